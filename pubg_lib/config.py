"""Settings as frozen dataclasses with a JSON round trip.

One dataclass per stage: the world, the tiny original model, and (in `unlearn.py`) unlearning. A config's fields,
with the fingerprint of the code that uses them, name its cache entry (`cache.entry`), so changing any setting
rebuilds exactly what depends on it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .io import write_json

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting is unknown, of the wrong type or out of range."""


def from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Build `cls` from a dict, refusing unknown keys with a message that names them."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} setting(s) {unknown}; known: {sorted(names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            v = values[f.name]
            kwargs[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**kwargs)


def to_dict(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg, path: Path | str) -> None:
    write_json(path, {"type": type(cfg).__name__, **to_dict(cfg)})


def load_config(cls: type[T], path: Path | str) -> T:
    values = json.loads(Path(path).read_text())
    values.pop("type", None)
    return from_dict(cls, values)


def _type_error(where: str, expected: str, value) -> ConfigError:
    return ConfigError(f"{where} must be {expected}, got {type(value).__name__} {value!r}")


def _check_value(where: str, value, hint) -> None:
    """Refuse a value that is not of the annotated type: ints must be ints (not 1.5, not "3", not True), floats
    finite numbers (NaN would silently switch a weighted term off: `NaN < 0` is false), flags real booleans."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arm in typing.get_args(hint):
            try:
                _check_value(where, value, arm)
                return
            except ConfigError as err:
                errors.append(str(err))
        names = " or ".join(getattr(a, "__name__", str(a)) for a in typing.get_args(hint))
        raise _type_error(where, names, value)
    if hint is type(None):
        if value is not None:
            raise _type_error(where, "None", value)
    elif hint is bool:
        if not isinstance(value, bool):
            raise _type_error(where, "a boolean (true/false)", value)
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(where, "an integer", value)
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(where, "a number", value)
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be finite, got {value!r}")
    elif hint is str:
        if not isinstance(value, str):
            raise _type_error(where, "a string", value)
    elif origin is tuple:
        if not isinstance(value, tuple):
            raise _type_error(where, "a list", value)
        (item, *_rest) = typing.get_args(hint)
        for i, v in enumerate(value):
            _check_value(f"{where}[{i}]", v, item)


def check_types(cfg) -> None:
    """Check every field of a config dataclass against its annotation (see `_check_value`). An integer given for a
    float field becomes a float, so that `learning_rate=1` and `1.0` name the same settings (and cache entry)."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        _check_value(f"{type(cfg).__name__}.{f.name}", value, hints[f.name])
        if hints[f.name] is float and isinstance(value, int):
            object.__setattr__(cfg, f.name, float(value))


def _check_positive(cfg, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value is None or value <= 0:
            raise ConfigError(f"{type(cfg).__name__}.{name} must be positive, got {value!r}")


@dataclass(frozen=True)
class WorldConfig:
    """The synthetic entity world: who exists, what they look like, how many photos of each."""

    seed: int = 0
    n_trained: int = 40  # people the original model is trained to recognise (role "known", like celebrities)
    n_anonymous: int = 12  # people in the pretraining photos whose identity the model is never told (role
    #                        "anonymous"): asked who they are, it describes them, as a real LVLM does for a stranger
    n_never_trained: int = 10  # people it never sees (role "never_seen"): the recognition filter must drop them
    n_seen: int = 16  # photos per person used to train the original model
    n_val: int = 4  # unseen photos per person for model selection (specificity sweeps)
    n_test: int = 4  # unseen photos per person for the final evaluation only
    min_identity_distance: int = 4  # any two people differ in at least this many of the 8 identity features
    image_size: int = 96  # rendered photo side in pixels (the processor resizes for the model)

    def __post_init__(self):
        check_types(self)
        _check_positive(self, "n_trained", "n_seen", "n_val", "n_test", "min_identity_distance", "image_size")
        for name in ("n_never_trained", "n_anonymous"):
            if getattr(self, name) < 0:
                raise ConfigError(f"WorldConfig.{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class TinyModelConfig:
    """Architecture and pretraining of the embedded world LLaVA (about 1M parameters).

    `architecture` "llava" builds `LlavaForConditionalGeneration` (LLaVA-1.5 style); "llava_next" builds
    `LlavaNextForConditionalGeneration` (LLaVA-1.6, the paper's models), so no code path can assume one of them."""

    seed: int = 0
    architecture: str = "llava"
    vision_image_size: int = 48
    vision_patch_size: int = 8
    vision_hidden: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    text_hidden: int = 128
    text_intermediate: int = 256
    text_layers: int = 4
    text_heads: int = 4
    max_positions: int = 256
    epochs: int = 30  # seed 2 of world v2 was still learning to see at 20 (loss 0.013 against 0.003-0.004)
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 0.01
    warmup_share: float = 0.05
    augment: bool = False  # random flips and shifts of the pretraining photos (`pretraining.augment_pixels`)
    augment_shift: int = 3  # at most this many pixels each way
    instructions_trained: int = 2  # the first k instruction wordings train; the rest are held out
    # The first k trained identity wordings rotate over the seen photos (0: all of them). The smoke world uses 2: with
    # 8 seen photos per person and 22 wordings, most photos would meet a wording of their own, and a model trained
    # for a minute then cannot answer the paper's query on its own training photos.
    identity_wordings: int = 0
    declined_every: int = 4  # one seen photo in k is asked a declined question (answered with the refusal); 0: never
    declined_queries_trained: int = 2  # the first k declined questions train; the rest are held out

    def __post_init__(self):
        check_types(self)
        _check_positive(
            self,
            "vision_image_size",
            "vision_patch_size",
            "vision_hidden",
            "vision_layers",
            "vision_heads",
            "text_hidden",
            "text_intermediate",
            "text_layers",
            "text_heads",
            "max_positions",
            "epochs",
            "batch_size",
            "learning_rate",
        )
        for name in ("identity_wordings", "declined_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"TinyModelConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.warmup_share < 1:
            raise ConfigError(f"TinyModelConfig.warmup_share must lie in [0, 1), got {self.warmup_share}")
        if self.weight_decay < 0:
            raise ConfigError(f"TinyModelConfig.weight_decay must be >= 0, got {self.weight_decay}")
        if self.vision_image_size % self.vision_patch_size:
            raise ConfigError("vision_image_size must be a multiple of vision_patch_size")
        if self.architecture not in ("llava", "llava_next"):
            raise ConfigError(
                f"TinyModelConfig.architecture must be 'llava' or 'llava_next', got {self.architecture!r}"
            )


def smoke_configs(seed: int = 0) -> tuple[WorldConfig, TinyModelConfig]:
    """A world and model small enough for a notebook or test to run end to end in about a minute, whose original
    model still behaves as the full one does: it names its people on photos it never saw, so the recognition filter
    is on in smoke runs too. Six known people with 8 seen photos each and the full-size text model, trained for 30
    epochs (about 70 s on one thread); on seed 0 the filter keeps 5 of the 6 (measured in the session that chose it:
    smaller worlds, 3 to 12 seen photos with half the text model, kept 0 to 5 depending on seed and thread count)."""
    world = WorldConfig(seed=seed, n_trained=6, n_anonymous=2, n_never_trained=2, n_seen=8, n_val=1, n_test=1)
    model = TinyModelConfig(seed=seed, epochs=30, batch_size=16, identity_wordings=2)
    return world, model


def default_configs(smoke: bool = False, seed: int = 0) -> tuple[WorldConfig, TinyModelConfig]:
    """The embedded default (or its smoke-sized version) that every notebook starts from."""
    if smoke:
        return smoke_configs(seed)
    return WorldConfig(seed=seed), TinyModelConfig(seed=seed)
