"""The install is pinned: every dependency of pyproject is in the lock at a version its range admits, and the
environment the tests run in is the locked one (so a fresh machine gets what CI tested)."""

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pubg_lib import paths


def _lock() -> dict[str, str]:
    pins = {}
    for line in (paths.ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line).groups()
            pins[canonicalize_name(name)] = version
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def test_every_declared_dependency_is_pinned_within_its_range():
    pins = _lock()
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is declared in pyproject.toml but not pinned in requirements.lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"lock pins {req.name}=={pins[name]}, not {req}"


def test_the_environment_is_the_locked_one():
    pins = _lock()
    drift = {}
    for name, version in pins.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            drift[name] = (version, None)
            continue
        if installed != version:
            drift[name] = (version, installed)
    assert not drift, f"installed versions differ from requirements.lock (locked, installed): {drift}"


def test_environment_yml_installs_the_lock():
    text = (paths.ROOT / "environment.yml").read_text()
    assert "-r requirements.lock" in text and "python=3.11" in text


def test_jupyterlab_and_the_console_scripts_are_there():
    """`make lab` opens JupyterLab from the venv; `pubg-reproduce` and `pubg-unlearn` sit beside `python -m`."""
    jupyter = Path(sys.executable).parent / "jupyter"  # the environment the tests run in
    done = subprocess.run([str(jupyter), "lab", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and re.match(r"\d+\.\d+", done.stdout), done.stderr
    scripts = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"pubg-reproduce": "pubg_lib.reproduce:main", "pubg-unlearn": "pubg_lib.cli:main"}
    entry_points = {
        e.name: e.value for e in metadata.entry_points(group="console_scripts") if e.name.startswith("pubg")
    }
    assert entry_points == scripts, "reinstall the package (make venv) after changing pyproject's scripts"
