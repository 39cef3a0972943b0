"""Batched evaluation of an LVLM's answers: one scorer for every answer table, and the paper's main-table row."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import prompts
from .metrics import rates
from .metrics.behaviour import behaviour_class, is_degenerate, is_repetitive
from .metrics.leakage import leaked_facts, named_people, names_person
from .metrics.oracle import attribute_accuracy, judge
from .metrics.similarity import TfidfScorer, private_fact_text
from .models import generate, world_corpus


def instruction_following(
    lvlm,
    dataset,
    photo_ids,
    instruction_name: str = prompts.DEFAULT_INSTRUCTION,
    query: str = prompts.PAPER_QUERY,
    progress: bool = True,
) -> pd.DataFrame:
    """Answers under the in-context instruction (q ⊕ c): do they name nobody, and describe the photo correctly?

    `name_free` (higher is better): the answer names no person of the dataset.
    `attribute_accuracy` (higher is better, world only): share of the photo's visual attributes stated correctly.
    """
    table = answer_table(lvlm, dataset, photo_ids, prompts.instructed(query, instruction_name), progress=progress)
    table["name_free"] = ~(table["names_person"] | table["names_other"])
    return table


def answer_table(
    lvlm,
    dataset,
    photo_ids,
    query: str = prompts.PAPER_QUERY,
    progress: bool = True,
    max_new_tokens: int = prompts.MAX_ANSWER_TOKENS,
) -> pd.DataFrame:
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
    answers = generate(
        lvlm,
        dataset.images(photo_ids),
        query,
        progress=progress,
        max_new_tokens=max_new_tokens,
        desc=f"answers of {getattr(lvlm, 'name', 'model')}",
    )
    return score_answers(dataset, photo_ids, answers, query)


def score_answers(dataset, photo_ids, answers, query: str = prompts.PAPER_QUERY) -> pd.DataFrame:
    """Score given answers (one per photo) with the columns of `answer_table`; used for answers generated
    elsewhere, e.g. the reference answers of the prompted original model."""
    photo_ids, answers = list(photo_ids), list(answers)
    if len(photo_ids) != len(answers):
        raise ValueError(f"{len(photo_ids)} photos but {len(answers)} answers")
    people = dataset.people.to_dict("records")
    rows = []
    for photo_id, answer in zip(photo_ids, answers):
        photo = dataset.photo(photo_id)
        person = dataset.person(photo["person_id"])
        row = {
            "photo_id": photo_id,
            "person_id": photo["person_id"],
            "photo_split": photo["photo_split"],
            "query": query,
            "answer": answer,
            "names_person": names_person(answer, person),
            "names_other": any(p != photo["person_id"] for p in named_people(answer, people)),
            "leaked_facts": ",".join(leaked_facts(answer, person)),
            "repetitive": is_repetitive(answer),
            "degenerate": is_degenerate(answer),
        }
        accuracy = None
        if dataset.has_attributes:
            truth = dataset.attributes(photo_id)
            accuracy = row["attribute_accuracy"] = attribute_accuracy(answer, truth)
            scores = judge(answer, truth, names_person=bool(row["leaked_facts"]), names_other=row["names_other"])
            row.update({f"judge_{k}": v for k, v in scores.items()})
        row["behaviour"] = behaviour_class(
            answer, leaks=bool(row["leaked_facts"]), names_other=row["names_other"], attribute_accuracy=accuracy
        )
        rows.append(row)
    return pd.DataFrame(rows)


MAIN_TABLE_COLUMNS = (
    "method",
    "usr",
    "tfidf_similarity",
    "clip_score",
    "judge_privacy",
    "judge_inform",
    "judge_hall",
    "refusal_rate",
    "degenerate_rate",
    "hallucinated_identity_rate",
    "retain_recognition_relative",
)


def tfidf_scorer(dataset) -> TfidfScorer:
    """The TF-IDF scorer of a dataset, fitted once on its corpus (every answer and prompt its world can produce)."""
    return TfidfScorer(world_corpus(dataset))


def score_tables(
    lvlm,
    dataset,
    forget_ids,
    retain_ids,
    *,
    tfidf: TfidfScorer | None = None,
    clip=None,
    query: str = prompts.PAPER_QUERY,
    progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Answer tables for forget and retain photos, with the TF-IDF similarity of each answer to the person's
    private facts (lower is better on forget photos; `metrics.similarity`) and, given a `ClipScorer`, the CLIP score
    (higher is better)."""
    tfidf = tfidf or tfidf_scorer(dataset)
    forget = answer_table(lvlm, dataset, forget_ids, query, progress=progress)
    retain = answer_table(lvlm, dataset, retain_ids, query, progress=progress)
    for table in (forget, retain):
        references = [private_fact_text(dataset.person(p)) for p in table["person_id"]]
        table["tfidf_similarity"] = tfidf.similarity(table["answer"].tolist(), references)
        if clip is not None:
            table["clip_score"] = clip.score(dataset.images(table["photo_id"]), table["answer"].tolist())
    return forget, retain


def main_table_row(
    method: str,
    forget: pd.DataFrame,
    retain: pd.DataFrame,
    original_retain: float,
    original_retain_description: float | None = None,
) -> dict:
    """The paper's metrics for one method (forget photos; retain recognition relative to the original model).

    Directions: usr ↑, tfidf_similarity ↓, clip_score ↑, judge_privacy ↑, judge_inform ↑, judge_hall ↓,
    refusal_rate ↓, degenerate_rate ↓, hallucinated_identity_rate ↓, retain_recognition_relative ↑ (1 = as before);
    with `original_retain_description`, also retain_description_relative ↑ (attribute accuracy on retain photos).
    """

    def mean(col):
        return float(forget[col].mean()) if col in forget else float("nan")

    row = {
        "method": method,
        "usr": rates.usr(forget),
        "usr_name_only": rates.usr_name_only(forget),
        "tfidf_similarity": mean("tfidf_similarity"),
        "clip_score": mean("clip_score"),
        "judge_privacy": mean("judge_privacy"),
        "judge_inform": rates.informativeness(forget),
        "judge_hall": mean("judge_hall"),
        "refusal_rate": rates.behaviour_rate(forget, "refusal"),
        "degenerate_rate": rates.behaviour_rate(forget, "degenerate"),
        "hallucinated_identity_rate": rates.behaviour_rate(forget, "hallucinated_identity"),
        "retain_recognition_relative": rates.retain_relative(rates.recognition(retain), original_retain),
    }
    if original_retain_description and "attribute_accuracy" in retain:
        row["retain_description_relative"] = float(retain["attribute_accuracy"].mean()) / original_retain_description
    return row


def base_method(label: str) -> str:
    """The method of a table row or figure label: "GA lr=0.003" and "PUBG, steps ∝ size" are GA's and PUBG's."""
    return label.split(" ")[0].rstrip(",")


# The method that shows each behaviour in the paper, tried first for its example (any method may supply one).
SHOWN_BY = {
    "refusal": ("REJECT",),
    "degenerate": ("GA",),
    "hallucinated_identity": ("NPO", "RANDOM"),
    "grounded_description": ("PUBG",),
}


def behaviour_examples(
    answers: pd.DataFrame,
    behaviours=("refusal", "degenerate", "hallucinated_identity", "grounded_description"),
    splits=("test", "val"),
) -> pd.DataFrame:
    """One answer per behaviour class, each on an unseen photo (`splits`) of a **different** person: the failure
    gallery. `answers` holds every method's answer table stacked, with a `method` column. People are matched to
    classes so that as many classes as possible are shown (an assignment problem: `linear_sum_assignment`); among
    such matchings, each class prefers the method that shows it in the paper (`SHOWN_BY`, a variant such as
    "GA lr=0.003" counting as its method), then a fixed order of methods and photos. A class that no method
    produced on an unseen photo of a person left free is absent from the result."""
    from scipy.optimize import linear_sum_assignment

    pool = answers[answers["photo_split"].isin(splits) & answers["behaviour"].isin(behaviours)].copy()
    pool["preferred"] = [
        base_method(m) in SHOWN_BY.get(b, ()) for m, b in zip(pool["method"].astype(str), pool["behaviour"])
    ]
    pool = pool.sort_values(["preferred", "method", "photo_id"], ascending=[False, True, True], kind="stable")
    people = sorted(pool["person_id"].unique())
    impossible = 10**6  # far above any sum of ranks: covering one more class always wins
    cost = np.full((len(behaviours), len(people)), impossible)
    first = {}  # (class, person) -> the row shown
    for i, b in enumerate(behaviours):
        rows = pool[pool["behaviour"] == b].drop_duplicates("person_id")
        for rank, (idx, person) in enumerate(zip(rows.index, rows["person_id"])):
            cost[i, people.index(person)] = rank
            first[b, person] = idx
    picked = []
    if people:
        for i, j in zip(*linear_sum_assignment(cost)):
            if cost[i, j] < impossible:
                picked.append((i, first[behaviours[i], people[j]]))
    shown = pool.loc[[idx for _, idx in sorted(picked)]]
    return shown.drop(columns="preferred").reset_index(drop=True)
