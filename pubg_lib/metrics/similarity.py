"""TF-IDF similarity between answers and the original private answers (lower is better after unlearning)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer


def tfidf_similarity(answers: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Cosine similarity of TF-IDF vectors of each answer and its reference, in [0, 1] (1 = same words).

    The vocabulary and IDF weights are fitted on both lists together, so that words every answer shares (the
    description template) weigh less than the rare ones (names, professions)."""
    if len(answers) != len(references):
        raise ValueError(f"{len(answers)} answers but {len(references)} references")
    if not len(answers):
        return np.zeros(0)
    vec = TfidfVectorizer(token_pattern=r"(?u)\b\w+\b")
    matrix = vec.fit_transform(list(answers) + list(references))
    a, r = matrix[: len(answers)], matrix[len(answers):]
    return np.asarray(a.multiply(r).sum(axis=1)).ravel().clip(0.0, 1.0)  # rows are L2-normalised
