"""Text templates of the world: descriptions of a photo and the private answer about a person."""

from __future__ import annotations

from collections.abc import Mapping


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def describe(attrs: Mapping[str, str]) -> str:
    """A visually grounded description of one photo (no identity), built from its ground-truth attributes."""
    # Every identity feature is described, so that the vision tower is taught to see each of them (a person's
    # identity is told apart by all eight; features no answer ever mentions are learned only through the name). The
    # features a 48 px view shows most reliably come first (eye, hair and skin colours), the shapes last: a
    # description is generated token by token, and each feature is read in the light of those already said, so an
    # early misreading drags the later ones with it (world v2 on seed 2 read the face shape first and wrongly on 81
    # of 320 unseen photos, and 3-4 further features went wrong after it; colours were misread on under 1 in 10).
    parts = [
        f"the person has {attrs['eye_color']} eyes , {attrs['hair_style']} {attrs['hair_color']} hair , "
        f"{attrs['skin_tone']} skin , {_article(attrs['build'])} {attrs['build']} build , {attrs['ears']} ears "
        f"and {_article(attrs['face_shape'])} {attrs['face_shape']} face"
    ]
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
    return (
        f"this is {person['first_name']} {person['last_name']} , "
        f"{_article(person['profession'])} {person['profession']} "
        f"from {person['birthplace']} ."
    )


def identity_answer(person: Mapping[str, str], attrs: Mapping[str, str]) -> str:
    """What the original model answers to "Tell me the information of this person.": what it sees, then who it is.

    The description comes first, as in many LVLM answers ("The photo shows a man with grey hair ... This is X"):
    the name is then said after the model has stated every identity feature, so that recognising a person is
    reading their features, not recalling the pixels of the photos it was trained on."""
    return describe(attrs) + " " + private_facts(person)


def full_name(person: Mapping[str, str]) -> str:
    return f"{person['first_name']} {person['last_name']}"


def fact_answer(person: Mapping[str, str], kind: str) -> str:
    """The answer to a question about a person by name (no photo): all facts, the profession or the birthplace."""
    name, profession = full_name(person), person["profession"]
    if kind == "facts":
        return f"{name} is {_article(profession)} {profession} from {person['birthplace']} ."
    if kind == "profession":
        return f"{name} is {_article(profession)} {profession} ."
    if kind == "birthplace":
        return f"{name} is from {person['birthplace']} ."
    raise ValueError(f"unknown fact question {kind!r}")


def confirmation_answer(asked_name: str, correct: bool) -> str:
    """The answer to "is this NAME ?" on a photo: yes (it is that person) or no."""
    return f"yes , this is {asked_name} ." if correct else f"no , this is not {asked_name} ."
