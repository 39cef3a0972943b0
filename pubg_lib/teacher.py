"""How good the instructed teacher is (notebook 02): does the original model, asked with the instruction c, name
nobody and describe what it sees, and what does the instruction do to the distribution at the name's position?

`judge_references` scores each reference answer o (names someone? visual attributes right?); `reference_quality`
summarises them with the private answers' leak; `name_position_table` reads the next-token distributions under q and
q ⊕ c, teacher-forced on the identity answer r, at the first answer position and at the first-name position.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import prompts
from .metrics.leakage import named_people
from .metrics.oracle import attribute_accuracy
from .reference import generate_answers, name_positions


def judge_references(forget: pd.DataFrame, dataset) -> pd.DataFrame:
    """`forget` (the unlearning data's forget rows: `photo_id`, `reference_answer`, `private_leaks`) with
    `reference_names_someone` (the reference names any person of the world) and `reference_attribute_accuracy`
    (the share of the photo's visual attributes it states rightly)."""
    people = dataset.people.to_dict("records")
    answers, photos = forget["reference_answer"], forget["photo_id"]
    return forget.assign(
        reference_names_someone=[bool(named_people(a, people)) for a in answers],
        reference_attribute_accuracy=[attribute_accuracy(a, dataset.attributes(p)) for a, p in zip(answers, photos)],
    )


def reference_quality(judged: pd.DataFrame) -> dict[str, float]:
    """The shares notebook 02 reports from `judge_references`: private answers that leak, references that name
    nobody, and the references' mean attribute accuracy."""
    return {
        "private_leak_share": float(judged["private_leaks"].mean()),
        "reference_name_free_share": float(1 - judged["reference_names_someone"].mean()),
        "reference_attribute_accuracy": float(judged["reference_attribute_accuracy"].mean()),
    }


def name_position_table(lvlm, dataset, photo_ids: Sequence[str], instruction: str, top: int = 3) -> pd.DataFrame:
    """One row per photo, prompt (q, q⊕c) and position (the answer's first, the first name's): the entropy of the
    next-token distribution (nats), the probability of the true first name (at the name's position; NaN at the
    first) and the `top` likeliest tokens with their probabilities."""
    tok = lvlm.tokenizer
    rows = []
    for at in name_positions(lvlm, dataset, photo_ids, instruction):
        for prompt, logprobs in (("q", at.plain), ("q⊕c", at.instructed)):
            for where, position in (("position 0", 0), ("first-name position", at.position)):
                logp = logprobs[position]
                prob = logp.exp()
                best = prob.topk(top)
                tokens = tok.convert_ids_to_tokens(best.indices.tolist())
                rows.append(
                    {
                        "photo_id": at.photo_id,
                        "prompt": prompt,
                        "where": where,
                        "entropy_nats": float(-(prob * logp).sum()),
                        "p_name": float(prob[at.name_id]) if where != "position 0" else np.nan,
                        "top_tokens": ", ".join(f"{t} {v:.2f}" for t, v in zip(tokens, best.values.tolist())),
                    }
                )
    return pd.DataFrame(rows)


def instruction_wordings(lvlm, dataset, photo_ids: Sequence[str]) -> pd.DataFrame:
    """Every instruction of `prompts.INSTRUCTIONS` appended to the paper's query on `photo_ids`, its answers judged
    as references are (`judge_references`): the share that name nobody and their mean attribute accuracy."""
    rows = []
    for name, text in prompts.INSTRUCTIONS.items():
        answers = generate_answers(lvlm, dataset, photo_ids, prompts.PAPER_QUERY, instruction_name=name)["answer"]
        judged = judge_references(
            pd.DataFrame({"photo_id": list(photo_ids), "reference_answer": list(answers)}), dataset
        )
        rows.append(
            {
                "instruction": name,
                "text": text,
                "name_free_share": float(1 - judged["reference_names_someone"].mean()),
                "attribute_accuracy": float(judged["reference_attribute_accuracy"].mean()),
            }
        )
    return pd.DataFrame(rows)
