"""Batched evaluation of an LVLM's answers on the entity world."""
from __future__ import annotations

import pandas as pd

from . import prompts
from .metrics.leakage import named_people
from .metrics.oracle import attribute_accuracy
from .models import generate


def instruction_following(lvlm, dataset, photo_ids, instruction_name: str = prompts.DEFAULT_INSTRUCTION,
                          query: str = prompts.PAPER_QUERY, progress: bool = True) -> pd.DataFrame:
    """Answers under the in-context instruction (q ⊕ c): do they name nobody, and describe the photo correctly?

    `name_free` (higher is better): the answer names no person of the dataset.
    `attribute_accuracy` (higher is better, world only): share of the photo's visual attributes stated correctly.
    """
    photo_ids = list(photo_ids)
    answers = generate(lvlm, dataset.images(photo_ids), prompts.instructed(query, instruction_name),
                       progress=progress, desc="instructed answers")
    people = dataset.people.to_dict("records")
    rows = []
    for photo_id, answer in zip(photo_ids, answers):
        row = {"photo_id": photo_id, "person_id": dataset.photo(photo_id)["person_id"], "answer": answer,
               "name_free": not named_people(answer, people)}
        if dataset.has_attributes:
            row["attribute_accuracy"] = attribute_accuracy(answer, dataset.attributes(photo_id))
        rows.append(row)
    return pd.DataFrame(rows)
