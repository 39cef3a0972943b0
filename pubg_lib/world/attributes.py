"""The vocabulary of the entity world: identity features, photo attributes and private facts.

Identity features stay the same in every photo of a person (as a face does); photo attributes change from photo
to photo (what a caption would describe). Private facts are what unlearning must remove.
"""
from __future__ import annotations

IDENTITY_FEATURES: dict[str, tuple[str, ...]] = {
    "face_shape": ("round", "oval", "square", "long"),
    "skin_tone": ("pale", "tan", "brown", "dark"),
    "eye_color": ("blue", "green", "amber", "grey"),
    "hair_color": ("black", "blonde", "red", "silver", "chestnut"),
    "hair_style": ("short", "long", "curly", "spiky"),
    "facial_hair": ("none", "beard", "moustache"),
}

PHOTO_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "clothing_color": ("crimson", "navy", "olive", "yellow", "white", "purple"),
    "background": ("beach", "forest", "city", "studio", "sunset"),
    "glasses": ("no", "yes"),
    "hat": ("no", "yes"),
}

# Attributes that a visually grounded description can mention (what the oracle judge scores).
VISUAL_ATTRIBUTES: tuple[str, ...] = (
    "hair_style", "hair_color", "eye_color", "facial_hair", "clothing_color", "glasses", "hat", "background",
)

FIRST_NAMES: tuple[str, ...] = (
    "alina", "bruno", "celia", "dario", "elena", "felix", "greta", "hugo", "ines", "jonas", "kira", "lucas",
    "maren", "nikolai", "olga", "pablo", "quinn", "rosa", "stefan", "tamara", "ulrich", "vera", "walter",
    "ximena", "yusuf", "zora", "anton", "bianca", "cyril", "dagny", "emil", "freya", "gustav", "hanna", "ivo",
    "jana", "kasimir", "lena", "milos", "nadia", "oskar", "petra", "rafael", "sonja", "tobias", "ursula",
    "viktor", "wanda", "yara", "zeno", "arvid", "bettina", "conrad", "delia", "edgar", "fiona", "gideon",
    "helga", "ilja", "juno", "kaspar", "liora", "mattias", "noemi", "orla", "piet", "rune", "silke",
)
LAST_NAMES: tuple[str, ...] = (
    "abbott", "brennan", "castell", "dorsey", "ellwood", "farrow", "gallant", "hartley", "ivers", "jessop",
    "kendrick", "lockhart", "marlow", "norwood", "oakes", "prescott", "quimby", "radcliffe", "sterling",
    "thornton", "upton", "vance", "whitlock", "yardley", "zeller", "ashby", "blackwood", "crane", "draper",
    "easton", "fairfax", "granger", "holloway", "irving", "jarvis", "kingsley", "langford", "merritt", "nolan",
    "osgood", "pemberton", "redford", "sinclair", "tallis", "underhill", "vickers", "winslow", "yeoman",
    "zimmer", "aldridge", "barlow", "carver", "dunmore", "everett", "fenwick", "gresham", "harlow", "ingram",
    "kessler", "lowell", "ashcombe", "bellamy", "colfax", "dunleavy", "eldridge", "finchley", "gilmore",
    "hathaway",
)
PROFESSIONS: tuple[str, ...] = (
    "pilot", "chef", "painter", "surgeon", "architect", "novelist", "violinist", "astronomer", "sculptor",
    "diplomat", "geologist", "journalist",
)
BIRTHPLACES: tuple[str, ...] = (
    "lisbon", "oslo", "kyoto", "nairobi", "lima", "vienna", "dublin", "seoul", "cairo", "quebec", "perth",
    "bergen",
)
