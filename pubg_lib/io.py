"""Atomic writes: a crash mid-write never leaves a half-written result behind."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _default(obj: Any):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(path: Path | str, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, default=_default) + "\n"
    return atomic_write_bytes(path, text.encode())


def read_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text())


def write_csv(path: Path | str, frame) -> Path:
    return atomic_write_bytes(path, frame.to_csv(index=False).encode())
