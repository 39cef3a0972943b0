"""The embedded entity world: synthetic people who behave like celebrity photos."""

from .attributes import IDENTITY_FEATURES, PHOTO_ATTRIBUTES, VISUAL_ATTRIBUTES
from .sampling import PHOTO_SPLITS
from .text import describe, identity_answer, private_facts

__all__ = [
    "IDENTITY_FEATURES",
    "PHOTO_ATTRIBUTES",
    "VISUAL_ATTRIBUTES",
    "PHOTO_SPLITS",
    "describe",
    "identity_answer",
    "private_facts",
]
