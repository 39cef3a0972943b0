"""Atomic writes: a crash mid-write never leaves a half-written result behind.

- Files are written to a temporary sibling and renamed over the target (`os.replace` is atomic on one file
  system); they get the mode an ordinary `open()` would give them (0666 less the umask), not `mkstemp`'s 0600.
- JSON is strict: NaN and ±Infinity are written as `null`, so that any JSON parser reads every result file.
- `replace_dir` swaps a whole folder (a saved run) so that readers see the old one or the new one, never a mix.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _file_mode() -> int:
    """The mode `open(path, "w")` would create a file with: 0666 less the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _dir_mode() -> int:
    """The mode `mkdir` would create a folder with: 0777 less the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask


def strict(obj: Any) -> Any:
    """`obj` with every non-finite float replaced by None and numpy/pandas scalars made plain (recursively)."""
    if isinstance(obj, dict):
        return {str(k): strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return strict(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, str):
        return obj
    try:  # pandas.NA, pandas.NaT and the like
        import pandas as pd

        if pd.isna(obj):
            return None
    except (TypeError, ValueError):
        pass
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def dumps_json(obj: Any) -> str:
    """Strict, stable JSON text (sorted keys, NaN/Infinity as null)."""
    return json.dumps(strict(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json(path: Path | str, obj: Any) -> Path:
    return atomic_write_bytes(path, dumps_json(obj).encode())


def read_json(path: Path | str) -> Any:
    """Read JSON strictly: a file holding NaN or Infinity is refused (it was not written by `write_json`)."""

    def refuse(constant):
        raise ValueError(f"{path}: non-finite number {constant} is not JSON")

    return json.loads(Path(path).read_text(), parse_constant=refuse)


def write_csv(path: Path | str, frame) -> Path:
    return atomic_write_bytes(path, frame.to_csv(index=False).encode())


def replace_dir(tmp: Path, target: Path) -> Path:
    """Move the finished folder `tmp` to `target`, replacing what is there.

    The old folder is first renamed aside, then `tmp` renamed into place, then the old one deleted: at no moment
    does `target` hold a mix of old and new files (a crash between the renames leaves the old folder aside as
    `target.old-*`, and `target` absent, which readers treat as "no run")."""
    tmp, target = Path(tmp), Path(target)
    aside = None
    if target.exists():
        aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
        aside.rmdir()
        target.rename(aside)
    tmp.rename(target)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return target


def staging_dir(target: Path) -> Path:
    """A fresh, empty sibling folder in which to build `target` before `replace_dir` moves it into place."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    os.chmod(folder, _dir_mode())  # mkdtemp makes 0700; a folder of results is as readable as any other
    return folder
