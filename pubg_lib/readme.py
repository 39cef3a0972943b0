"""The README's numbers, rendered from the stored results (`python -m pubg_lib.readme` rewrites the section between
the markers; a test checks that the README says what the results say). No number in the README is typed by hand.
"""

from __future__ import annotations

import argparse
import math

from . import paths
from .io import atomic_write_bytes, read_json

START = "<!-- results:start (python -m pubg_lib.readme; do not edit by hand) -->"
END = "<!-- results:end -->"
README = paths.ROOT / "README.md"
MAIN_COLUMNS = {
    "usr": "USR",
    "usr_name_only": "USR (name only)",
    "tfidf_similarity": "TF-IDF to private facts",
    "clip_score": "CLIP",
    "judge_inform": "inform (1-5)",
    "judge_hall": "hall (1-5)",
    "refusal_rate": "refusal",
    "degenerate_rate": "degenerate",
    "hallucinated_identity_rate": "wrong identity",
    "retain_recognition_relative": "retain kept",
}


def _load(name: str) -> dict | None:
    path = paths.RESULTS / name
    return read_json(path) if path.exists() else None


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.2f}"
    return str(x)


def _claims(claims: dict) -> list[str]:
    out = []
    for name, value in claims.items():
        holds = value["holds"] if isinstance(value, dict) else value
        out.append(f"  - {'holds' if holds else '**does not hold**'}: {name}")
    return out


def render() -> str:
    """The section, from `data/results/` as it is now."""
    lines = [START, ""]
    world = _load("01_dataset_construction.json")
    if world:
        lines.append(
            f"- **The original model** (notebook 01, seed-0 world) names known people on "
            f"{_fmt(world['unseen_recognition_accuracy'])} of photos it never saw "
            f"({_fmt(world['seen_recognition_accuracy'])} of its training photos; {world['kept_people']} of "
            f"{world.get('known_people', '–')} people kept by the recognition filter). Under the in-context "
            f"instruction it names nobody on {_fmt(world['instructed_name_free_share'])} of answers and gets "
            f"{_fmt(world['instructed_attribute_accuracy'])} of visual attributes right. It refuses the paper's "
            f"query on {_fmt(world.get('refusal_rate_paper_query'))} and a declined question on "
            f"{_fmt(world.get('declined_refusal_rate'))} of unseen photos (a held-out wording of it: "
            f"{_fmt(world.get('declined_heldout_refusal_rate'))})."
        )
    robust = _load("world_robustness.json")
    if robust and "variants" in robust:
        rows = robust["variants"]
        failing = ", ".join(k for k, v in robust["bars_hold"].items() if not v) or "none fails"
        lines.append(
            f"- **On every world** (`make check-world`: seeds {robust['seeds']} × threads {robust['threads']}, "
            f"{len(rows)} variants), unseen recognition lies between "
            f"{_fmt(robust['summary']['unseen_recognition_accuracy']['min'])} and "
            f"{_fmt(robust['summary']['unseen_recognition_accuracy']['max'])}; every bar holds on every variant: "
            f"{_fmt(robust['all_bars_hold'])} ({failing})."
        )
    training = _load("04_training.json")
    if training and "claims" in training:
        lines.append("- **Headline behaviours on this world** (notebook 04, five forget people):")
        lines += _claims(training["claims"])
    failure = _load("05_failure_modes.json")
    if failure:
        table = failure["main_table"]
        cols = [c for c in MAIN_COLUMNS if any(c in row for row in table.values())]
        lines += [
            "",
            f"**Main table** (notebook 05; {failure.get('n_forget_photos', '–')} unseen test photos of the forget "
            f"people, {failure.get('n_retain_photos', '–')} of retain people):",
            "",
            "| method | " + " | ".join(MAIN_COLUMNS[c] for c in cols) + " |",
            "|---|" + "---|" * len(cols),
        ]
        for method, row in table.items():
            lines.append(f"| {method} | " + " | ".join(_fmt(row.get(c)) for c in cols) + " |")
        if failure.get("claims"):
            lines += ["", "- **The paper's claims on this world** (notebook 05):"]
            lines += _claims(failure["claims"])
    general = _load("06_generalization.json")
    if general and "summary" in general:
        parts = []
        for key, row in general["summary"].items():
            if key.startswith("PUBG") and "usr_unseen_mean" in row:
                parts.append(
                    f"{key}: {_fmt(row['usr_unseen_mean'])} ± {_fmt(row.get('usr_unseen_sd'))} (n = {row.get('n')})"
                )
        if parts:
            lines.append(
                "- **Forget-set size** (notebook 06; mean ± s.d. over forget-set draws): PUBG's USR on unseen "
                "photos, by variant | forget-set size: " + "; ".join(parts) + "."
            )
    ablations = _load("07_ablations.json")
    if ablations and ablations.get("claims"):
        lines.append(f"- **Ablations** (notebook 07, seeds {ablations.get('seeds')}):")
        lines += _claims(ablations["claims"])
    timing = (_load("reproduce.json") or {}).get("last_run_that_executed")
    if timing and timing.get("wall_seconds"):
        slowest = max(timing["notebook_seconds"].items(), key=lambda kv: kv[1])
        lines += [
            "",
            f"The last full reproduction that executed notebooks ({len(timing['executed'])} of them) took "
            f"{timing['wall_seconds'] / 60:.0f} minutes on this machine's CPU, the longest {slowest[0]} "
            f"({slowest[1] / 60:.0f} minutes) (`data/results/reproduce.json`).",
        ]
    lines += ["", END]
    return "\n".join(lines)


def section(text: str) -> str:
    """The rendered part of a README text (markers included)."""
    if START not in text or END not in text:
        raise ValueError(f"README has no results section ({START!r} … {END!r})")
    return text[text.index(START) : text.index(END) + len(END)]


def update(path=README) -> bool:
    """Rewrite the results section of the README; returns whether it changed."""
    text = path.read_text()
    new = text.replace(section(text), render())
    if new != text:
        atomic_write_bytes(path, new.encode())
    return new != text


def main(argv=None) -> None:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    print("README updated" if update() else "README already says what the results say")


if __name__ == "__main__":
    main()
