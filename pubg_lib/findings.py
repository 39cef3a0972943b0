"""Findings, rendered from the stored results: the README's results section and the "What we found" cell that
closes every notebook (`python -m pubg_lib.findings` rewrites both after a reproduction; tests check that they say
what `data/results/` says). No number in the README or in a notebook's markdown is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from . import paths
from .io import atomic_write_bytes, read_json
from .plots import text_only_says

START = "<!-- results:start (python -m pubg_lib.findings; do not edit by hand) -->"
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
    "retain_refusal_rate": "retain refused",
    "reached_target": "val USR >= 0.95 on every draw",
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


def _with_interval(row: dict, column: str) -> str:
    """A table cell: the value, and its interval where the row holds one (`<column>_ci_low`, `_ci_high`)."""
    low, high = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
    if low is None or high is None or (isinstance(low, float) and math.isnan(low)):
        return _fmt(row.get(column))
    return f"{_fmt(row.get(column))} [{_fmt(low)}, {_fmt(high)}]"


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
        pairs = ", ".join(f"({r['seed']}, {r['threads']})" for r in rows)
        failing = ", ".join(k for k, v in robust["bars_hold"].items() if not v) or "none fails"
        lines.append(
            f"- **On every world measured** (`make check-world`; {len(rows)} variants, (seed, threads): "
            f"{pairs}), unseen recognition lies between "
            f"{_fmt(robust['summary']['unseen_recognition_accuracy']['min'])} and "
            f"{_fmt(robust['summary']['unseen_recognition_accuracy']['max'])}; every bar holds on every variant: "
            f"{_fmt(robust['all_bars_hold'])} ({failing})."
        )
    if robust and robust.get("claims_by_world"):
        worlds = robust["claims_by_world"]
        held = [n for n, ok in robust["claims_on_every_world"].items() if ok]
        failed = {
            n: [w for w, claims in worlds.items() if not claims[n]["holds"]]
            for n, ok in robust["claims_on_every_world"].items()
            if not ok
        }
        lines.append(
            f"- **The paper's claims on {len(worlds)} worlds** (`make check-world`, seeds {', '.join(worlds)}, one "
            "forget-set draw each, every method's steps calibrated on its val photos as in notebook 05; notebook 05 "
            "asserts only these): hold on every world: "
            + "; ".join(held)
            + ". Not on every world: "
            + ("; ".join(f"{n} (fails on world {', '.join(w)})" for n, w in failed.items()) or "none")
            + "."
        )
    training = _load("04_training.json")
    if training and "claims" in training:
        lines.append("- **Headline behaviours on this world** (notebook 04, five forget people):")
        lines += _claims(training["claims"])
    failure = _load("05_failure_modes.json")
    if failure:
        table = failure["main_table"]
        cols = [c for c in MAIN_COLUMNS if any(c in row for row in table.values())]
        draws = failure.get("draws")
        lines += [
            "",
            f"**Main table at iso-privacy** (notebook 05: every method at the learning rate and γ notebook 03c chose, "
            f"its steps calibrated on each draw's val photos for the highest val USR; "
            f"{failure.get('n_forget_photos', '–')} unseen test answers of forget people per method"
            + (f" over {len(draws)} forget-set draws" if draws else "")
            + f", {failure.get('n_retain_photos', '–')} of retain people; [95% bootstrap interval]):",
            "",
            "| method | " + " | ".join(MAIN_COLUMNS[c] for c in cols) + " |",
            "|---|" + "---|" * len(cols),
        ]
        for method, row in table.items():
            lines.append(f"| {method} | " + " | ".join(_with_interval(row, c) for c in cols) + " |")
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
    attacked = _load("re_elicitation.json")
    if attacked and attacked.get("leaks"):
        by_name = {m: g["forget"].get("by name, no photo", {}).get("leak_rate") for m, g in attacked["leaks"].items()}
        again = {m: a for m, a in attacked["resurfaced"].items() if a}
        lines.append(
            f"- **Re-elicitation** (notebook 08, draw {attacked['draw']}, n = {attacked['n_forget_photos']} forget "
            "test photos): asked by name without a photo, the forget people's facts come back at "
            + ", ".join(f"{m} {_fmt(v)}" for m, v in by_name.items())
            + "; leaks again above its own paper-query rate and the strangers' floor: "
            + ("; ".join(f"{m} under {', '.join(a)}" for m, a in again.items()) if again else "none")
            + "."
        )
    text = _load("text_only.json")
    if text and text.get("methods"):
        rows = {m: row for m, row in text["methods"].items() if m != "original"}
        lines.append(
            f"- **Text only** (notebook 09: the language model alone, people unlearned by name; "
            f"n = {next(iter(rows.values()))['n']} held-out questions per method over {len(text['draws'])} draws): "
            + "; ".join(
                f"{m} USR {_with_interval(row, 'usr')}, mostly {text_only_says(row['mostly'])}, "
                "retain facts "
                f"{_fmt(row['retain_relative'])}"
                for m, row in rows.items()
            )
            + f"; the text teacher describes a look on {_fmt(text['teacher']['description_share'])} of its answers, "
            f"right on {_fmt(text['teacher']['appearance_accuracy'])} of features (chance "
            f"{_fmt(text['teacher']['appearance_chance'])})."
        )
    timing = (_load("reproduce.json") or {}).get("last_run_that_executed")
    if timing and timing.get("wall_seconds"):
        slowest = max(timing["notebook_seconds"].items(), key=lambda kv: kv[1])
        lines += [
            "",
            f"The last full reproduction that executed notebooks ({len(timing['executed'])} of them) took "
            f"{timing['wall_seconds'] / 60:.0f} minutes on this machine's CPU, the longest {slowest[0]} "
            f"({slowest[1] / 60:.0f} minutes) (`data/results/reproduce.json`).",
        ]
    mutation = _load("mutation_testing.json")
    if mutation and mutation.get("checked"):
        modules = ", ".join(f"`{Path(m).stem}` ({v['total']})" for m, v in mutation["modules"].items())
        timeouts = sum(m["timeout"] for m in mutation["modules"].values())
        survivors = mutation["checked"] - mutation["caught"]
        lines += [
            "",
            f"Mutation testing (`make mutate`; mutants per module: {modules}): {mutation['caught']} of "
            f"{mutation['checked']} mutants caught ({mutation['kill_rate']:.1%}; {timeouts} of them by making the "
            f"tests run past mutmut's time limit); of the {survivors} survivors, {mutation['equivalent_survivors']} "
            f"are equivalent to the original (each explained in `tests/equivalent_mutants.json`) and "
            f"{len(mutation['open_survivors'])} are open work (`data/results/mutation_testing.json`).",
        ]
    lines += ["", END]
    return "\n".join(lines)


FOUND = "## What we found"
NEXT = {
    "01_dataset_construction": "02_reference_prompting",
    "02_reference_prompting": "03_loss_derivation",
    "03_loss_derivation": "04_training",
    "04_training": "05_failure_modes",
    "03b_specificity": "03c_iso_privacy",
    "03c_iso_privacy": "04_training",
    "05_failure_modes": "06_generalization",
    "06_generalization": "07_ablations",
    "07_ablations": "08_re_elicitation",
    "08_re_elicitation": "09_text_only",
}


# Two or three things to try after each notebook, each with the command that runs it. A run with parameters other
# than the notebook's defaults writes build/variants/<notebook>-<digest>/ (results, figures, the executed notebook),
# never the committed results (`outputs.variant_of`). tests/test_findings.py plans every command.
RUN = "python -m pubg_lib.reproduce --only"
EXERCISES = {
    "01_dataset_construction": [
        (
            "Does the world model reach its bars on another world? (it draws and pretrains a new world model)",
            f"{RUN} 01 -p 01 seed=1",
        ),
        (
            "Keep only the people it names on every unseen photo: how many are left, and does recognition rise?",
            f"{RUN} 01 -p 01 min_share=1.0",
        ),
    ],
    "02_reference_prompting": [
        (
            "Prompt the teacher with the instruction wording pretraining never used: is it still name-free?",
            f"{RUN} 02 -p 02 instruction=no_identity_heldout",
        ),
        (
            "Cache only the teacher's top 5 tokens plus the remaining mass: how much does the name position change?",
            f"{RUN} 02 -p 02 topk=5",
        ),
    ],
    "03_loss_derivation": [
        ("A larger NPO β: where does NPO's forget term flatten against GA's?", f"{RUN} 03 -p 03 npo_beta=2.0"),
        (
            "A smaller GA step on the name position: does the freed mass still go to the likeliest tokens?",
            f"{RUN} 03 -p 03 ga_learning_rate=0.1 -p 03 rollout_steps=6000",
        ),
    ],
    "03b_specificity": [
        (
            "Half the trials per method, without storing the chosen settings: do the choices change?",
            f"{RUN} 03b -p 03b n_trials=4 -p 03b write_chosen_settings=False",
        ),
        (
            "Sweep λ for PUBG only (the guidance weight):",
            f"{RUN} 03b -p 03b 'methods=[\"PUBG\"]' -p 03b 'grid={{\"lam\": [0.5, 1.0, 2.0]}}' "
            "-p 03b write_chosen_settings=False",
        ),
    ],
    "03c_iso_privacy": [
        (
            "A stricter privacy target (every val answer private): which methods still get there?",
            f"{RUN} 03c -p 03c min_usr=1.0 -p 03c write_chosen_settings=False",
        ),
        (
            "Half the trials per method: does each method still reach the target?",
            f"{RUN} 03c -p 03c n_trials=6 -p 03c write_chosen_settings=False",
        ),
    ],
    "04_training": [
        ("Every method four times as long (120 steps): which ones degenerate?", f"{RUN} 04 -p 04 steps=120"),
        (
            "PUBG without its guidance term (λ = 0) is GD with PUBG's settings: what does it say then?",
            f'{RUN} 04 -p 04 \'overrides={{"PUBG": {{"lam": 0.0}}}}\'',
        ),
    ],
    "05_failure_modes": [
        ("Forget ten people instead of five:", f"{RUN} 05 -p 05 n_forget=10"),
        ("The comparison without the aggressive GA row:", f"{RUN} 05 -p 05 aggressive_ga_lr=0.0"),
        (
            "Five forget-set draws instead of three: how much narrower are the intervals?",
            f"{RUN} 05 -p 05 'draws=[0, 1, 2, 3, 4]' -p 05 tradeoff_table=False",
        ),
    ],
    "06_generalization": [
        (
            "Add GA to the methods compared across forget-set sizes:",
            f'{RUN} 06 -p 06 \'methods=["GA", "NPO", "PUBG"]\'',
        ),
        (
            "Scale PUBG's steps with the forget-set size at every size:",
            f"{RUN} 06 -p 06 'scaled_pubg_sizes=[5, 10, 20]'",
        ),
    ],
    "07_ablations": [
        ("A finer λ axis:", f"{RUN} 07 -p 07 'lams=[0.0, 0.5, 1.0, 2.0, 8.0]'"),
        ("Smaller LoRA ranks:", f"{RUN} 07 -p 07 'ranks=[1, 2, 4]'"),
    ],
    "08_re_elicitation": [
        (
            "A longer relearning attack: does anything come back after 50 steps?",
            f"{RUN} 08 -p 08 'relearn_steps=[5, 20, 50]'",
        ),
        ("A harsher rounding (3 bits per weight):", f"{RUN} 08 -p 08 bits=3"),
        ("Another forget set (notebook 05's second draw):", f"{RUN} 08 -p 08 draw=1"),
    ],
    "09_text_only": [
        (
            "REJECT and GD by name too: does refusing carry over to a model without images?",
            f'{RUN} 09 -p 09 \'methods=["GA", "GD", "NPO", "REJECT", "PUBG"]\'',
        ),
        (
            "The teacher under the privacy wording instead: does it describe, or say the facts?",
            f"{RUN} 09 -p 09 instruction=privacy",
        ),
    ],
}


def _notebook_findings(stem: str) -> list[str]:
    """The measured lines of a notebook's findings (empty if its results are not stored)."""
    # (two notebooks store their results under names without their number)
    r = _load(
        {
            "03b_specificity": "specificity.json",
            "08_re_elicitation": "re_elicitation.json",
            "09_text_only": "text_only.json",
        }.get(stem, f"{stem}.json")
    )
    if not r:
        return []
    if stem == "01_dataset_construction":
        return [
            f"- Unseen photos of known people: named correctly on {_fmt(r['unseen_recognition_accuracy'])} "
            f"(seen photos {_fmt(r['seen_recognition_accuracy'])}); {r['kept_people']} people pass the filter.",
            f"- Held-out wordings of the question: {_fmt(r.get('heldout_paraphrase_recognition'))}; facts by name "
            f'without a photo: {_fmt(r.get("text_only_fact_accuracy"))}; "is this NAME ?" answered right: '
            f"{_fmt(r.get('confirmation_accuracy'))}.",
            f"- Under the in-context instruction: name-free {_fmt(r['instructed_name_free_share'])}, visual "
            f"attributes right {_fmt(r['instructed_attribute_accuracy'])}.",
            f"- Refusal: the paper's query {_fmt(r.get('refusal_rate_paper_query'))}, a declined question "
            f"{_fmt(r.get('declined_refusal_rate'))}, its held-out wording "
            f"{_fmt(r.get('declined_heldout_refusal_rate'))}.",
        ]
    if stem == "02_reference_prompting":
        return [
            f"- The original model leaks a private fact on {_fmt(r['private_leak_share'])} of its forget people's "
            f"training photos; the prompted teacher names nobody on {_fmt(r['reference_name_free_share'])} of "
            f"them and gets {_fmt(r['reference_attribute_accuracy'])} of visual attributes right.",
            f"- Probability of the name where it would come: {_fmt(r['p_name_plain'])} without the instruction, "
            f"{_fmt(r['p_name_instructed'])} with it.",
        ]
    if stem == "03_loss_derivation":
        lines = [
            f"- Hand computation against `pubg_lib.losses`: largest difference {r['max_abs_diff_hand_vs_lib']:.1e}; "
            f"gradients {r['max_abs_grad_error']:.1e}.",
        ]
        if "name_position" in r:  # stored by the notebook since it shows the world model's name position
            name, roll = r["name_position"], r["ga_rollout"]
            lines += [
                f"- At the real name position the student puts {name['p_student']:.3f} on the name: GA's push on it "
                f"is {name['ga']:+.4f}, guidance's {name['bg']:+.3f} (the instructed model puts "
                f"{name['p_teacher']:.3f} there).",
                f"- A toy GA rollout on that position ({roll['steps']} steps) takes the name from "
                f"{roll['p_name_start']:.3f} to {roll['p_name_end']:.3f} (below 0.5 after {roll['steps_to_half']} "
                f"steps); the token that was likeliest after it ({roll.get('runner_up')}) goes from "
                f"{roll['runner_up_mass_before']:.1%} to "
                f"{roll['runner_up_mass_after']:.1%} of the mass.",
            ]
        return lines
    if stem == "03c_iso_privacy":
        return [
            f"- {m}: {'reaches' if v['reached'] else '**never reaches**'} the target, val USR >= {_fmt(r['min_usr'])} "
            f"({'chosen at' if v['reached'] else 'best'} val USR {_fmt(v['val']['usr'])}, step {v['step']}; "
            f"relative retain {_fmt(v['val']['retain_recognition_relative'])}, degenerate "
            f"{_fmt(v['val']['degenerate'])}; {v['trials']} trials)"
            for m, v in r["methods"].items()
        ]
    if stem == "03b_specificity":
        return [
            f"- {m}: val USR {_fmt(v['val']['usr'])}, relative retain {_fmt(v['val']['retain_recognition_relative'])} "
            f"({v['rule']}; {v['trials']} trials)"
            for m, v in r["methods"].items()
        ]
    if stem in ("04_training", "05_failure_modes", "07_ablations"):
        lines = _claims(r.get("claims", {}))
        if stem == "05_failure_modes":
            t = r["main_table"]
            by_draw, steps = r.get("usr_test_by_draw", {}), r.get("steps_by_draw", {})
            lines += [
                f"- {m}: USR {_with_interval(row, 'usr')}"
                + (f" (by draw: {', '.join(_fmt(v) for v in by_draw[m].values())})" if m in by_draw else "")
                + (f", steps by draw {', '.join(str(v) for v in steps[m].values())}" if m in steps else "")
                + f", inform {_fmt(row.get('judge_inform'))}, refusal {_fmt(row.get('refusal_rate'))}, degenerate "
                f"{_fmt(row.get('degenerate_rate'))}, wrong identity {_fmt(row.get('hallucinated_identity_rate'))}"
                for m, row in t.items()
            ]
        return [line.strip() for line in lines]
    if stem == "08_re_elicitation":
        lines = []
        for method, groups in r["leaks"].items():
            forget, floor = groups["forget"], groups.get("stranger", {})
            cells = [
                f"{attack} {_fmt(row['leak_rate'])} [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"
                + (f" (strangers {_fmt(floor[attack]['leak_rate'])})" if attack in floor else "")
                for attack, row in forget.items()
            ]
            lines.append(f"- {method}: " + "; ".join(cells))
        again = {m: a for m, a in r["resurfaced"].items() if a}
        lines.append(
            "- Leaks again (the lower 95% bound above its own paper-query rate and the strangers' floor): "
            + ("; ".join(f"{m} under {', '.join(a)}" for m, a in again.items()) if again else "no unlearned model")
            + f" (n = {r['n_forget_photos']} forget test photos, {r['n_stranger_photos']} of strangers)."
        )
        return lines
    if stem == "09_text_only":
        teacher = r["teacher"]
        lines = [
            f"- The text teacher (the instruction, asked by name): free of private facts on "
            f"{_fmt(teacher['fact_free_share'])} of its answers, a description of a look on "
            f"{_fmt(teacher['description_share'])}, whose features are right on "
            f"{_fmt(teacher['appearance_accuracy'])} (chance {_fmt(teacher['appearance_chance'])}; n = {teacher['n']})."
        ]
        for method, row in r["methods"].items():
            every = row.get("reached_on_every_draw")
            reached = "" if every is None else f"; reached val USR 0.95 on every draw: {'yes' if every else 'no'}"
            mostly = text_only_says(row["mostly"])
            lines.append(
                f"- {method}: USR {_with_interval(row, 'usr')} (trained wordings {_fmt(row['usr_trained'])}), "
                f"mostly {mostly}: degenerate {_fmt(row['degenerate_rate'])}, wrong person or facts "
                f"{_fmt(row['hallucinated_rate'])}, a made-up look {_fmt(row['description_rate'])}; retain facts "
                f"{_fmt(row['retain_relative'])} of the original's (n = {row['n']} questions, "
                f"{row['n_draws']} draws{reached})"
            )
        return lines
    if stem == "06_generalization":
        return [
            f"- {key}: USR on unseen photos {_fmt(row['usr_unseen_mean'])} ± {_fmt(row.get('usr_unseen_sd'))}, "
            f"relative retain {_fmt(row.get('retain_recognition_relative_mean'))} (n = {row.get('n')})"
            for key, row in r["summary"].items()
            if "usr_unseen_mean" in row
        ]
    return []


def notebook_findings(stem: str) -> str:
    """The "What we found" markdown of a notebook: its measured lines, exercises with their commands, then the next
    notebook."""
    lines = [FOUND, "", "Read from `data/results/` (rendered by `python -m pubg_lib.findings`, not typed):", ""]
    lines += _notebook_findings(stem) or ["- (no stored results yet: run `make reproduce`)"]
    if stem in EXERCISES:
        lines += ["", "Try it (a run with other parameters writes `build/variants/`, never the committed results):", ""]
        lines += [f"{i}. {what}\n   `{command}`" for i, (what, command) in enumerate(EXERCISES[stem], 1)]
    if stem in NEXT:
        lines += ["", f"Next: [{NEXT[stem]}]({NEXT[stem]}.ipynb)."]
    return "\n".join(lines)


def update_notebooks() -> list[str]:
    """Rewrite the "What we found" cell of every numbered notebook (added as the last cell if missing); returns the
    notebooks that changed. Outputs are untouched (committed notebooks have none)."""
    changed = []
    for path in sorted(paths.NOTEBOOKS.glob("[0-9][0-9]*.ipynb")):
        nb = read_json(path)
        text = notebook_findings(path.stem)
        cells = [c for c in nb["cells"] if c["cell_type"] == "markdown" and "".join(c["source"]).startswith(FOUND)]
        if cells:
            cell = cells[0]
        else:
            cell = {"cell_type": "markdown", "id": f"found-{path.stem[:2]}", "metadata": {}, "source": []}
            nb["cells"].append(cell)
        if "".join(cell["source"]) != text:
            cell["source"] = text.splitlines(keepends=True)
            atomic_write_bytes(path, (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode())
            changed.append(path.name)
    return changed


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
    changed = update_notebooks()
    print(f"findings rewritten in {changed}" if changed else "every notebook's findings already match the results")


if __name__ == "__main__":
    main()
