"""A notebook's parameters: what its cell tagged `parameters` declares, checks on values given for them, and
whether a run's values are the defaults (a run with other values writes its own folder, not the committed results:
`outputs.variant_of`)."""

from __future__ import annotations

import ast
import difflib
import json
from pathlib import Path


class ParameterError(ValueError):
    """A parameter the notebook does not declare, or of the wrong type."""


def declared_parameters(path: Path) -> dict:
    """The literals assigned in the notebook's cell tagged `parameters` (`name: type = value`, so that
    `papermill --help-notebook` shows the types, or plain `name = value`)."""
    nb = json.loads(path.read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"{path.name} must have exactly one cell tagged 'parameters', has {len(cells)}")
    out = {}
    for node in ast.parse("".join(cells[0]["source"])).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = ast.literal_eval(node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            out[node.target.id] = ast.literal_eval(node.value)
    return out


def check_parameters(path: Path, given: dict) -> None:
    declared = declared_parameters(path)
    for name, value in given.items():
        if name not in declared:
            close = difflib.get_close_matches(name, declared, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ParameterError(f"{path.name} has no parameter {name!r}{hint} (it declares {sorted(declared)})")
        default = declared[name]
        ok = isinstance(value, type(default)) or (
            isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)
        )
        if not ok:
            raise ParameterError(
                f"{path.name}: parameter {name!r} must be {type(default).__name__} like its default "
                f"{default!r}, got {type(value).__name__} {value!r}"
            )


def parse_assignment(text: str):
    if "=" not in text:
        raise ParameterError(f"parameter {text!r} must look like name=value")
    name, raw = text.split("=", 1)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw  # a bare string
    return name.strip(), value
