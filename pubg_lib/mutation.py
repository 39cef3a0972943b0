"""The score of `make mutate`, stored so that the README reads it instead of typing it.

`mutmut run` leaves one `mutants/<source>.meta` per mutated module, with each mutant's test exit code. This module
turns them into `data/results/mutation_testing.json`: per module and in all the mutants killed and surviving, the
kill rate, and every survivor with, if it is listed in `tests/equivalent_mutants.json`, why it is
equivalent (no test could tell it from the original). A survivor not listed there is open work.

    python -m pubg_lib.mutation          # after `mutmut run` (make mutate does both)
"""

from __future__ import annotations

import argparse
import fnmatch
import json
from pathlib import Path

from . import paths
from .io import read_json, write_json
from .provenance import environment

# mutmut's exit codes (mutmut.stats.status_by_exit_code): 1 and 3 are kills; 0 survived; 36, 24, -24, 152 and 255
# timed out (counted here as caught, and apart, so that the README can say how many); 33 and 5: no test ran it.
KILLED = {1, 3}
TIMEOUT = {36, 24, -24, 152, 255}
SURVIVED = {0}
NO_TESTS = {5, 33}
EQUIVALENT_FILE = paths.ROOT / "tests" / "equivalent_mutants.json"


def _status(code) -> str:
    if code in KILLED:
        return "killed"
    if code in TIMEOUT:
        return "timeout"
    if code in SURVIVED:
        return "survived"
    if code in NO_TESTS:
        return "no tests"
    return "not checked" if code is None else "suspicious"


def summarise(mutants_dir: Path, equivalent: dict[str, str], patterns: list[str] | None = None) -> dict:
    """Counts per module and overall, and the survivors (with the reason each listed equivalent one is), over the
    mutants whose names match `patterns` (mutmut's own name patterns; all of them if None)."""
    modules, survivors = {}, []
    for meta in sorted(Path(mutants_dir).rglob("*.py.meta")):
        module = meta.relative_to(mutants_dir).as_posix().removesuffix(".meta")
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if patterns:
            codes = {k: v for k, v in codes.items() if any(fnmatch.fnmatch(k, p) for p in patterns)}
        if not codes:
            continue
        counts = dict.fromkeys(("killed", "timeout", "survived", "no tests", "not checked", "suspicious"), 0)
        for name, code in sorted(codes.items()):
            status = _status(code)
            counts[status] += 1
            if status in ("survived", "no tests"):
                survivors.append(
                    {"mutant": name, "module": module, "status": status, "equivalent": equivalent.get(name)}
                )
        checked = counts["killed"] + counts["timeout"] + counts["survived"] + counts["no tests"]
        modules[module] = {
            **counts,
            "total": len(codes),
            "kill_rate": (counts["killed"] + counts["timeout"]) / checked if checked else None,
        }
    caught = sum(m["killed"] + m["timeout"] for m in modules.values())
    checked = caught + len(survivors)
    listed = sum(s["equivalent"] is not None for s in survivors)
    return {
        "modules": modules,
        "mutants": sum(m["total"] for m in modules.values()),
        "checked": checked,
        "caught": caught,
        "kill_rate": caught / checked if checked else None,
        # the equivalent survivors cannot be killed by any test: the rate among the mutants that can
        "kill_rate_without_equivalent": caught / (checked - listed) if checked > listed else None,
        "equivalent_survivors": listed,
        "open_survivors": [s["mutant"] for s in survivors if s["equivalent"] is None],
        "survivors": survivors,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("patterns", nargs="*", help="the mutant names `mutmut run` was given (default: every mutant)")
    ap.add_argument("--mutants", default="mutants", help="mutmut's working folder (default: ./mutants)")
    args = ap.parse_args(argv)
    equivalent = read_json(EQUIVALENT_FILE)["equivalent"] if EQUIVALENT_FILE.exists() else {}
    result = summarise(Path(args.mutants), equivalent, args.patterns or None)
    result["patterns"] = args.patterns
    if not result["checked"]:
        raise SystemExit(f"no mutant results under {args.mutants}: run `mutmut run` first")
    result["provenance"] = environment()
    write_json(paths.RESULTS / "mutation_testing.json", result)
    print(
        f"{result['caught']} of {result['checked']} mutants caught ({result['kill_rate']:.1%}); "
        f"{result['equivalent_survivors']} survivors listed as equivalent, {len(result['open_survivors'])} open"
    )
    for name in result["open_survivors"]:
        print("  open:", name)


if __name__ == "__main__":
    main()
