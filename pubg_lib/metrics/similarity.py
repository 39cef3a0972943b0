"""TF-IDF similarity between an answer and the person's private facts (lower is better after unlearning).

The reference is the private-fact sentence ("this is nora vance , a pilot from lisbon ."), not the original
model's whole answer: that answer is mostly a description of the photo, which a good unlearned model keeps on
purpose, so comparing with it rewarded saying nothing. The vocabulary and IDF weights are fitted **once**, on a
fixed corpus (the world's text: every answer and prompt it can produce), so that every method is scored on the
same scale; words every answer shares (the template) weigh little, names and professions a lot. A grounded
description scores about 0; an answer that repeats fact words (or the fact template) scores above it. A degenerate
answer (empty, too short or repetitive: `behaviour.is_degenerate`) says nothing to compare and scores NaN, so that
a method's mean is taken over the answers that say something and collapse never looks like forgetting best.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from ..world import text as world_text
from .behaviour import is_degenerate


def private_fact_text(person: Mapping) -> str:
    """What the original model says that must be forgotten: the private-fact sentence of the person (name only for
    a dataset without profession and birthplace)."""
    if all(
        isinstance(person.get(k), str) and person.get(k)
        for k in ("first_name", "last_name", "profession", "birthplace")
    ):
        return world_text.private_facts(person)
    return f"this is {person['name']} ."


class TfidfScorer:
    """Cosine similarity of TF-IDF vectors, with one vocabulary and IDF fitted on `corpus`."""

    def __init__(self, corpus: Sequence[str]):
        if not len(corpus):
            raise ValueError("TF-IDF needs a non-empty corpus to fit its vocabulary and IDF weights")
        self.vectorizer = TfidfVectorizer(token_pattern=r"(?u)\b\w+\b").fit(list(corpus))

    def similarity(self, answers: Sequence[str], references: Sequence[str]) -> np.ndarray:
        """Similarity of each answer to its reference, in [0, 1] (1 = the same words, weighted alike). A degenerate
        answer, or one with no word of the vocabulary (gibberish the world never says), has nothing to compare: its
        similarity is NaN, not about 0, so that saying nothing never looks like forgetting best."""
        if len(answers) != len(references):
            raise ValueError(f"{len(answers)} answers but {len(references)} references")
        if not len(answers):
            return np.zeros(0)
        a = self.vectorizer.transform(list(answers))
        r = self.vectorizer.transform(list(references))
        sims = np.asarray(a.multiply(r).sum(axis=1)).ravel().clip(0.0, 1.0)  # rows are L2-normalised
        nothing_said = np.asarray(a.getnnz(axis=1) == 0) | np.array([is_degenerate(x) for x in answers])
        return np.where(nothing_said, np.nan, sims)
