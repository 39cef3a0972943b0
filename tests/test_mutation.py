"""`make mutate`'s score is counted from mutmut's own records, with equivalent survivors named and kept apart."""

import json

import pytest

from pubg_lib.mutation import summarise


def _meta(folder, module, codes):
    path = folder / f"{module}.meta"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"exit_code_by_key": codes, "durations_by_key": {}, "estimated_durations_by_key": {}}))


def test_kills_survivors_and_equivalent_mutants_are_counted_apart(tmp_path):
    _meta(tmp_path, "pubg_lib/losses.py", {"a__mutmut_1": 1, "a__mutmut_2": 0, "a__mutmut_3": 36, "a__mutmut_4": 3})
    _meta(tmp_path, "pubg_lib/metrics/rates.py", {"b__mutmut_1": 1, "b__mutmut_2": 33, "b__mutmut_3": None})
    result = summarise(tmp_path, {"a__mutmut_2": "renames a local variable"})
    losses = result["modules"]["pubg_lib/losses.py"]
    assert (losses["killed"], losses["timeout"], losses["survived"], losses["total"]) == (2, 1, 1, 4)
    assert losses["kill_rate"] == pytest.approx(3 / 4)
    rates = result["modules"]["pubg_lib/metrics/rates.py"]
    assert rates["no tests"] == 1 and rates["not checked"] == 1 and rates["kill_rate"] == pytest.approx(1 / 2)
    # a mutant no test ran is a survivor; one not checked yet counts nowhere
    assert result["checked"] == 6 and result["caught"] == 4
    assert result["kill_rate"] == pytest.approx(4 / 6)
    assert result["kill_rate_without_equivalent"] == pytest.approx(4 / 5)
    assert result["open_survivors"] == ["b__mutmut_2"]
    assert result["equivalent_survivors"] == 1


def test_only_the_mutants_that_were_asked_for_are_counted(tmp_path):
    _meta(
        tmp_path,
        "pubg_lib/unlearn.py",
        {"pubg_lib.unlearn.x_step__mutmut_1": 1, "pubg_lib.unlearn.x_record__mutmut_1": 0},
    )
    _meta(tmp_path, "pubg_lib/losses.py", {"pubg_lib.losses.x_ga__mutmut_1": 0})
    result = summarise(tmp_path, {}, ["pubg_lib.unlearn.x_step__*"])
    assert list(result["modules"]) == ["pubg_lib/unlearn.py"]
    assert (result["checked"], result["caught"], result["open_survivors"]) == (1, 1, [])
