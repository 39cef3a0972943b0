"""Drawing a photo of a person from their identity features and the photo's attributes (PIL only)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PIL import Image, ImageDraw

SKIN = {"pale": (250, 222, 196), "tan": (222, 170, 110), "brown": (150, 100, 62), "dark": (82, 54, 36)}
EYES = {"blue": (40, 110, 230), "green": (30, 160, 60), "amber": (230, 150, 20), "grey": (130, 130, 140)}
HAIR = {
    "black": (20, 20, 20),
    "blonde": (240, 215, 110),
    "red": (200, 60, 20),
    "silver": (205, 205, 215),
    "chestnut": (120, 60, 25),
}
CLOTHES = {
    "crimson": (190, 20, 50),
    "navy": (20, 30, 110),
    "olive": (110, 120, 30),
    "yellow": (245, 220, 40),
    "white": (245, 245, 245),
    "purple": (120, 40, 160),
}
# face half-width, half-height as a share of the image side
# Shapes far enough apart to be told apart at the model's 48 px: round and square share a size but square has
# nearly sharp corners; oval and long are narrower and taller in steps.
FACE = {"round": (0.215, 0.215), "oval": (0.17, 0.235), "square": (0.205, 0.205), "long": (0.13, 0.265)}


def _background(draw: ImageDraw.ImageDraw, kind: str, s: int, rng: np.random.Generator) -> None:
    if kind == "beach":
        draw.rectangle([0, 0, s, int(s * 0.6)], fill=(120, 190, 240))
        draw.rectangle([0, int(s * 0.6), s, s], fill=(235, 210, 150))
    elif kind == "forest":
        draw.rectangle([0, 0, s, s], fill=(60, 120, 60))
        for _ in range(5):
            x = int(rng.integers(0, s))
            draw.polygon(
                [(x, int(s * 0.1)), (x - s // 10, int(s * 0.55)), (x + s // 10, int(s * 0.55))], fill=(20, 70, 30)
            )
    elif kind == "city":
        draw.rectangle([0, 0, s, s], fill=(170, 175, 185))
        for i in range(5):
            x0 = i * s // 5
            top = int(s * rng.uniform(0.1, 0.4))
            draw.rectangle([x0 + 2, top, x0 + s // 5 - 2, s], fill=(90, 95, 110))
    elif kind == "studio":
        draw.rectangle([0, 0, s, s], fill=(225, 225, 220))
    elif kind == "sunset":
        for y in range(s):
            t = y / s
            draw.line([(0, y), (s, y)], fill=(int(250 - 60 * t), int(150 - 90 * t), int(60 + 60 * t)))
    else:
        raise ValueError(f"unknown background {kind!r}")


# shoulder half-width as a share of the image side
BUILD = {"slim": 0.2, "average": 0.29, "broad": 0.4}


def _ears(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, hw: float, hh: float, skin) -> None:
    ey = cy - hh * 0.05
    for sign in (-1, 1):
        x = cx + sign * hw
        if kind == "small":
            draw.ellipse([x - hw * 0.2, ey - hh * 0.16, x + hw * 0.2, ey + hh * 0.16], fill=skin)
        elif kind == "large":
            draw.ellipse([x - hw * 0.38, ey - hh * 0.3, x + hw * 0.38, ey + hh * 0.3], fill=skin)
        elif kind == "pointed":  # a tall triangle with its tip above the eyes
            draw.polygon(
                [(x, ey + hh * 0.2), (x + sign * hw * 0.35, ey - hh * 0.55), (x - sign * hw * 0.1, ey - hh * 0.1)],
                fill=skin,
            )
        else:
            raise ValueError(f"unknown ears {kind!r}")


def render_photo(person: Mapping[str, str], photo: Mapping, size: int = 96) -> Image.Image:
    """Render one photo. `photo` holds the photo attributes plus `dx`, `dy`, `scale` (pose jitter) and `seed`."""
    s = size
    rng = np.random.default_rng(int(photo["seed"]))
    img = Image.new("RGB", (s, s))
    draw = ImageDraw.Draw(img)
    _background(draw, photo["background"], s, rng)
    k = float(photo["scale"])
    cx, cy = s * 0.5 + float(photo["dx"]) * s, s * 0.45 + float(photo["dy"]) * s
    hw, hh = FACE[person["face_shape"]]
    hw, hh = hw * s * k, hh * s * k
    hair = HAIR[person["hair_color"]]
    # torso and shirt, as wide as the build
    half = BUILD[person["build"]] * s * k
    draw.rounded_rectangle(
        [cx - half, cy + hh * 0.9, cx + half, s + 4],
        radius=int(s * 0.08),
        fill=CLOTHES[photo["clothing_color"]],
    )
    # long hair falls behind the shoulders
    if person["hair_style"] == "long":
        draw.rectangle([cx - hw * 1.15, cy - hh * 0.6, cx + hw * 1.15, cy + hh * 1.2], fill=hair)
    # ears, half behind the face (over long hair, so they show whatever the hairstyle)
    _ears(draw, person["ears"], cx, cy, hw, hh, SKIN[person["skin_tone"]])
    # face
    skin = SKIN[person["skin_tone"]]
    if person["face_shape"] == "square":
        draw.rounded_rectangle([cx - hw, cy - hh, cx + hw, cy + hh], radius=int(hw * 0.12), fill=skin)
    else:
        draw.ellipse([cx - hw, cy - hh, cx + hw, cy + hh], fill=skin)
    # hair on top
    style = person["hair_style"]
    top = cy - hh
    if style in ("short", "long"):
        draw.chord([cx - hw * 1.05, top - hh * 0.25, cx + hw * 1.05, top + hh * 0.75], 180, 360, fill=hair)
    elif style == "curly":
        for i in range(7):
            ang = np.pi * (i / 6)
            px, py = cx - np.cos(ang) * hw * 0.95, top + hh * 0.2 - np.sin(ang) * hh * 0.3
            r = hw * 0.32
            draw.ellipse([px - r, py - r, px + r, py + r], fill=hair)
    elif style == "spiky":
        n = 5
        for i in range(n):
            x0 = cx - hw + 2 * hw * i / n
            draw.polygon(
                [(x0, top + hh * 0.25), (x0 + hw / n, top - hh * 0.35), (x0 + 2 * hw / n, top + hh * 0.25)], fill=hair
            )
        draw.rectangle([cx - hw * 0.95, top + hh * 0.05, cx + hw * 0.95, top + hh * 0.25], fill=hair)
    else:
        raise ValueError(f"unknown hair style {style!r}")
    # eyes
    ey, ex, er = cy - hh * 0.1, hw * 0.45, max(1.5, s * 0.045 * k)  # large enough that the colour survives 48 px
    for sign in (-1, 1):
        x = cx + sign * ex
        draw.ellipse([x - er * 1.4, ey - er, x + er * 1.4, ey + er], fill=(255, 255, 255))
        draw.ellipse([x - er, ey - er, x + er, ey + er], fill=EYES[person["eye_color"]])
    if photo["glasses"] == "yes":
        for sign in (-1, 1):
            x = cx + sign * ex
            draw.rectangle(
                [x - er * 2.0, ey - er * 1.7, x + er * 2.0, ey + er * 1.7], outline=(10, 10, 10), width=max(1, s // 48)
            )
        draw.line([(cx - ex + er * 2.0, ey), (cx + ex - er * 2.0, ey)], fill=(10, 10, 10), width=max(1, s // 48))
    # mouth and facial hair
    my = cy + hh * 0.5
    if person["facial_hair"] == "beard":
        draw.chord([cx - hw * 0.95, cy + hh * 0.05, cx + hw * 0.95, cy + hh * 1.05], 0, 180, fill=hair)
    elif person["facial_hair"] == "moustache":
        draw.rectangle([cx - hw * 0.6, my - hh * 0.3, cx + hw * 0.6, my - hh * 0.04], fill=hair)
    draw.line([(cx - hw * 0.25, my), (cx + hw * 0.25, my)], fill=(120, 30, 30), width=max(1, s // 48))
    if photo["hat"] == "yes":  # perched above the hair (spikes included), so the hairstyle stays visible
        brim_y = top - hh * 0.42
        draw.rectangle([cx - hw * 1.3, brim_y - hh * 0.08, cx + hw * 1.3, brim_y + hh * 0.04], fill=(35, 35, 40))
        draw.rectangle([cx - hw * 0.75, brim_y - hh * 0.55, cx + hw * 0.75, brim_y], fill=(35, 35, 40))
    return img
