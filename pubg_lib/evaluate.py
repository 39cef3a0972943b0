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
    table = answer_table(lvlm, dataset, photo_ids, prompts.instructed(query, instruction_name), progress=progress)
    table["name_free"] = ~(table["names_person"] | table["names_other"])
    return table


def answer_table(lvlm, dataset, photo_ids, query: str = prompts.PAPER_QUERY, progress: bool = True,
                 max_new_tokens: int = 48) -> pd.DataFrame:
    """Generate one answer per photo and score it. Columns (direction after unlearning, for forget photos):

    - `names_person` (lower is better on forget photos, higher on retain photos): the photo's own person is named;
    - `names_other` (lower is better): somebody else of the dataset is named (a hallucinated identity);
    - `leaked_facts`: which private facts of the person appear (name, profession, birthplace);
    - `repetitive`, `degenerate` (lower is better): collapse symptoms;
    - `attribute_accuracy` (higher is better, world only): share of visual attributes stated correctly;
    - `behaviour`: one of `metrics.behaviour.BEHAVIOURS` (leak, degenerate, refusal, hallucinated identity,
      grounded description, other);
    - `judge_privacy`, `judge_inform`, `judge_hall` (world only): the oracle judge (`metrics.oracle.judge`).
    """
    photo_ids = list(photo_ids)
    answers = generate(lvlm, dataset.images(photo_ids), query, progress=progress, max_new_tokens=max_new_tokens,
                       desc=f"answers of {getattr(lvlm, 'name', 'model')}")
    return score_answers(dataset, photo_ids, answers, query)


def score_answers(dataset, photo_ids, answers, query: str = prompts.PAPER_QUERY) -> pd.DataFrame:
    """Score given answers (one per photo) with the columns of `answer_table`; used for answers generated
    elsewhere, e.g. the reference answers of the prompted original model."""
    from .metrics.behaviour import behaviour_class, is_degenerate, is_repetitive
    from .metrics.leakage import leaked_facts, names_person
    from .metrics.oracle import judge

    photo_ids, answers = list(photo_ids), list(answers)
    if len(photo_ids) != len(answers):
        raise ValueError(f"{len(photo_ids)} photos but {len(answers)} answers")
    people = dataset.people.to_dict("records")
    rows = []
    for photo_id, answer in zip(photo_ids, answers):
        person_id = dataset.photo(photo_id)["person_id"]
        person = dataset.person(person_id)
        row = {"photo_id": photo_id, "person_id": person_id, "split": dataset.photo(photo_id)["split"],
               "query": query, "answer": answer, "names_person": names_person(answer, person),
               "names_other": any(p != person_id for p in named_people(answer, people)),
               "leaked_facts": ",".join(leaked_facts(answer, person)),
               "repetitive": is_repetitive(answer), "degenerate": is_degenerate(answer)}
        accuracy = None
        if dataset.has_attributes:
            truth = dataset.attributes(photo_id)
            accuracy = row["attribute_accuracy"] = attribute_accuracy(answer, truth)
            scores = judge(answer, truth, names_person=bool(row["leaked_facts"]), names_other=row["names_other"])
            row.update({f"judge_{k}": v for k, v in scores.items()})
        row["behaviour"] = behaviour_class(answer, leaks=bool(row["leaked_facts"]), names_other=row["names_other"],
                                           attribute_accuracy=accuracy)
        rows.append(row)
    return pd.DataFrame(rows)


MAIN_TABLE_COLUMNS = ("method", "usr", "tfidf_similarity", "clip_score", "judge_privacy", "judge_inform", "judge_hall",
                      "refusal_rate", "degenerate_rate", "hallucinated_identity_rate", "retain_recognition_relative")


def score_tables(lvlm, dataset, forget_ids, retain_ids, *, original_answers: dict[str, str], clip=None,
                 query: str = prompts.PAPER_QUERY, progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Answer tables for forget and retain photos, with the TF-IDF similarity to the original model's answer on
    the same photo (lower is better on forget photos) and, given a `ClipScorer`, the CLIP score (higher is better)."""
    from .metrics.similarity import tfidf_similarity

    forget = answer_table(lvlm, dataset, forget_ids, query, progress=progress)
    retain = answer_table(lvlm, dataset, retain_ids, query, progress=progress)
    for table in (forget, retain):
        table["tfidf_similarity"] = tfidf_similarity(table["answer"].tolist(),
                                                     [original_answers[p] for p in table["photo_id"]])
        if clip is not None:
            table["clip_score"] = clip.score(dataset.images(table["photo_id"]), table["answer"].tolist())
    return forget, retain


def main_table_row(method: str, forget: pd.DataFrame, retain: pd.DataFrame, original_retain: float,
                   original_retain_description: float | None = None) -> dict:
    """The paper's metrics for one method (forget photos; retain recognition relative to the original model).

    Directions: usr ↑, tfidf_similarity ↓, clip_score ↑, judge_privacy ↑, judge_inform ↑, judge_hall ↓,
    refusal_rate ↓, degenerate_rate ↓, hallucinated_identity_rate ↓, retain_recognition_relative ↑ (1 = as before);
    with `original_retain_description`, also retain_description_relative ↑ (attribute accuracy on retain photos).
    """
    shares = forget["behaviour"].value_counts(normalize=True)
    mean = lambda col: float(forget[col].mean()) if col in forget else float("nan")  # noqa: E731
    return {"method": method, "usr": float((forget["leaked_facts"] == "").mean()),
            "tfidf_similarity": mean("tfidf_similarity"), "clip_score": mean("clip_score"),
            "judge_privacy": mean("judge_privacy"), "judge_inform": mean("judge_inform"), "judge_hall": mean("judge_hall"),
            "refusal_rate": float(shares.get("refusal", 0.0)), "degenerate_rate": float(shares.get("degenerate", 0.0)),
            "hallucinated_identity_rate": float(shares.get("hallucinated_identity", 0.0)),
            "retain_recognition_relative": float(retain["names_person"].mean()) / original_retain
            if original_retain > 0 else float("nan"),
            **({"retain_description_relative": float(retain["attribute_accuracy"].mean()) / original_retain_description}
               if original_retain_description and "attribute_accuracy" in retain else {})}
