"""Cache keys that know the code: every cached artefact is named by its settings *and* the code that builds it.

`digest(obj)` is the one hash of the package: settings, tables, cache keys. `code_fingerprint(module)` hashes the
syntax trees (docstrings removed, so comments and documentation do not count) of a `pubg_lib` module and of every
`pubg_lib` module it imports, transitively: change `losses.py` and every run trained with it gets a new key, so
`runs.cached_run` trains again instead of loading an adapter the old code made. `entry(kind, settings, module)`
names the cache folder; `build(folder, write)` fills it atomically; `exclusive(folder)` makes a second process that
wants the same entry wait for the first one's instead of computing it again.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import shutil
from collections.abc import Callable
from functools import cache
from pathlib import Path

from filelock import FileLock

from . import paths
from .io import replace_dir, staging_dir, strict

PACKAGE = "pubg_lib"


def digest(obj, length: int = 16) -> str:
    """A short stable hash of any JSON-able object (dict keys sorted; tuples as lists; NaN as null)."""
    text = json.dumps(strict(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _module_file(module: str, root: Path) -> Path:
    rel = Path(*module.split(".")[1:])
    package = root / rel / "__init__.py"
    return package if package.exists() else (root / rel).with_suffix(".py")


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(getattr(body[0], "value", None), ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def package_imports(module: str, root: Path | None = None) -> set[str]:
    """The `pubg_lib` modules that `module` imports at module level (relative or absolute)."""
    root = root or paths.ROOT / PACKAGE
    tree = ast.parse(_module_file(module, root).read_text())
    is_package = _module_file(module, root).name == "__init__.py"
    here = module if is_package else module.rsplit(".", 1)[0]
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if not target.startswith(PACKAGE):
                continue
            for alias in node.names:  # `from . import losses` names a module; `from .x import y` names x
                sub = f"{target}.{alias.name}"
                found.add(sub if _module_file(sub, root).exists() else target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(PACKAGE)}
    return {m for m in found if m != module}


@cache
def _closure(module: str, root: Path) -> tuple[str, ...]:
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(package_imports(m, root))
    return tuple(sorted(seen))


def code_fingerprint(module: str, root: Path | None = None) -> str:
    """Hash of the code `module` runs: its syntax tree and that of every `pubg_lib` module it imports."""
    root = root or paths.ROOT / PACKAGE
    h = hashlib.sha256()
    for m in _closure(module, root):
        tree = _strip_docstrings(ast.parse(_module_file(m, root).read_text()))
        h.update(m.encode() + b"\0" + ast.dump(tree).encode() + b"\0")
    return h.hexdigest()[:16]


def entry(kind: str, settings: dict, module: str) -> Path:
    """The cache folder of an artefact of `kind` built by `module` from `settings`."""
    return paths.CACHE / kind / digest({"settings": settings, "code": code_fingerprint(module)})


@contextlib.contextmanager
def exclusive(folder: Path):
    """Hold the lock of the cache entry `folder` (a `.lock` file beside it): check for the entry and build it inside,
    and two processes that need it at once (two test workers, two notebooks) build it once, the second loading what
    the first wrote. Not reentrant: lock an entry in one place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(folder.with_name(folder.name + ".lock")):
        yield


def build(folder: Path, write: Callable[[Path], None]) -> Path:
    """Fill `folder` by `write(tmp)` in a staging folder, then swap it into place (readers never see half)."""
    tmp = staging_dir(folder)
    try:
        write(tmp)
        replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
