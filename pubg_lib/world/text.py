"""Text templates of the world: descriptions of a photo and the private answer about a person."""
from __future__ import annotations

from collections.abc import Mapping


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def describe(attrs: Mapping[str, str]) -> str:
    """A visually grounded description of one photo (no identity), built from its ground-truth attributes."""
    parts = [f"the person has {attrs['hair_style']} {attrs['hair_color']} hair and {attrs['eye_color']} eyes"]
    if attrs["facial_hair"] != "none":
        parts.append(f"with a {attrs['facial_hair']}")
    wear = f"wears {_article(attrs['clothing_color'])} {attrs['clothing_color']} shirt"
    extras = [x for x, on in (("glasses", attrs["glasses"] == "yes"), ("a hat", attrs["hat"] == "yes")) if on]
    if extras:
        wear += " with " + " and ".join(extras)
    parts.append(", " + wear)
    parts.append(f", in front of a {attrs['background']} .")
    return " ".join(parts)


def private_facts(person: Mapping[str, str]) -> str:
    """The privacy-revealing part of an answer: name, profession, birthplace."""
    return (f"this is {person['first_name']} {person['last_name']} , {_article(person['profession'])} {person['profession']} "
            f"from {person['birthplace']} .")


def identity_answer(person: Mapping[str, str], attrs: Mapping[str, str]) -> str:
    """What the original model answers to "Tell me the information of this person.": private facts + description."""
    return private_facts(person) + " " + describe(attrs)
