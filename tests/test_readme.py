"""The README says what the stored results say: its numbers are rendered from data/results, never typed."""

import re

from pubg_lib import paths, readme


def test_the_readme_results_section_is_rendered_from_the_stored_results():
    text = (paths.ROOT / "README.md").read_text()
    assert readme.section(text) == readme.render(), "run `python -m pubg_lib.readme` after a reproduction"


def test_no_number_is_typed_in_the_readme_prose_about_results():
    """Outside the rendered section, the README's prose states no measured rates (0.xx) or timings."""
    text = (paths.ROOT / "README.md").read_text()
    outside = text.replace(readme.section(text), "")
    assert not re.findall(r"\b0\.\d\d\b", outside)
    assert not re.findall(r"\b\d+(\.\d+)? ?(min|minutes)\b", outside)
