"""The shape of the package: imports point one way, a method is one registry entry, caches know their code."""

import ast
import shutil
from pathlib import Path

import pytest
import torch

from pubg_lib import cache, losses, methods, paths
from pubg_lib.methods import Method
from pubg_lib.reference import build_unlearning_data
from pubg_lib.unlearn import UnlearnConfig

PACKAGE = paths.ROOT / "pubg_lib"
# Data flows top to bottom; a module may import only modules above it.
ORDER = [
    "paths",
    "io",
    "provenance",
    "progress",
    "labels",
    "losses",
    "shared_prefix",
    "gradients",
    "cache",
    "config",
    "world.attributes",
    "world.text",
    "world.render",
    "world.sampling",
    "world",
    "prompts",
    "entities",
    "models",
    "metrics.leakage",
    "metrics.behaviour",
    "metrics.oracle",
    "metrics.similarity",
    "metrics.rates",
    "metrics.clip_score",
    "metrics.llm_judge",
    "metrics",
    "stats",
    "evaluate",
    "probes",
    "pretraining",
    "construction",
    "reference",
    "teacher",
    "methods",
    "unlearn",
    "runs",
    "sweep",
    "experiments",
    "comparison",
    "attacks",
    "text_only",
    "plots",
    "ablations",
    "generalization",
    "notebook_parameters",
    "outputs",
    "figures",
    "reproduce",
    "robustness",
    "mutation",
    "findings",
    "book",
    "cli",
]


def _modules() -> list[str]:
    found = []
    for p in sorted(PACKAGE.rglob("*.py")):
        rel = p.relative_to(PACKAGE).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        if parts:
            found.append(".".join(parts))
    return found


def test_every_module_has_a_place_in_the_order():
    assert sorted(_modules()) == sorted(ORDER)


@pytest.mark.parametrize("module", ORDER)
def test_imports_point_one_way(module):
    rank = {m: i for i, m in enumerate(ORDER)}
    imported = {m.removeprefix("pubg_lib.") for m in cache.package_imports(f"pubg_lib.{module}")}
    upward = sorted(m for m in imported if rank[m] >= rank[module])
    assert not upward, f"{module} imports {upward}, which come after it"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_package_import_inside_a_function(path):
    """Imports of the package sit at the top of each module (a `__main__` block is entry-point glue, not code)."""
    tree = ast.parse(path.read_text())
    allowed = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            allowed.add(id(node))
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            allowed |= {id(n) for n in ast.walk(node)}
    inner = [
        ast.unparse(n)
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom)
        and id(n) not in allowed
        and (n.level > 0 or (n.module or "").startswith("pubg_lib"))
    ]
    inner += [
        ast.unparse(n)
        for n in ast.walk(tree)
        if isinstance(n, ast.Import) and id(n) not in allowed and any(a.name.startswith("pubg_lib") for a in n.names)
    ]
    assert not inner, f"package imports inside functions: {inner}"


def test_code_fingerprints_follow_the_code_and_ignore_its_documentation(tmp_path):
    root = tmp_path / "pubg_lib"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    before = cache.code_fingerprint("pubg_lib.runs", root)
    path = root / "losses.py"
    text = path.read_text()
    path.write_text(text.replace('"""The loss terms of PUBG', '"""The loss terms (reworded) of PUBG'))
    assert cache.code_fingerprint("pubg_lib.runs", root) == before  # a docstring is not code
    path.write_text(
        text.replace(
            "return sequence_logprob(logits, labels).mean()", "return 2 * sequence_logprob(logits, labels).mean()"
        )
    )
    assert cache.code_fingerprint("pubg_lib.runs", root) != before  # a loss is
    assert cache.code_fingerprint("pubg_lib.pretraining", root) == cache.code_fingerprint("pubg_lib.pretraining")


def test_an_entry_being_built_is_waited_for_not_built_again(tmp_path):
    """Three workers that want the same cache entry at once (test workers, notebooks): one builds it, the others wait
    for its lock and find it there."""
    import threading
    import time

    folder = tmp_path / "entry"
    built = []

    def want():
        with cache.exclusive(folder):
            if not folder.exists():
                built.append(threading.get_ident())
                time.sleep(0.3)  # long enough for the others to ask meanwhile
                cache.build(folder, lambda tmp: (tmp / "made").write_text("once"))

    workers = [threading.Thread(target=want) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    assert len(built) == 1 and (folder / "made").read_text() == "once"


@pytest.fixture(scope="module")
def data(smoke_construction):
    con = smoke_construction
    return build_unlearning_data(con.lvlm, con.dataset, con.split(2), model_id=str(con.model_dir), progress=False)


def test_a_changed_loss_retrains_the_cached_run(smoke_construction, data, tmp_path, monkeypatch):
    from pubg_lib import runs

    con = smoke_construction
    copy_root = tmp_path / "project"
    shutil.copytree(PACKAGE, copy_root / "pubg_lib", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(paths, "ROOT", copy_root)  # the cache keys now read the copy's code
    trained = []
    real_train = runs.train_and_save
    monkeypatch.setattr(runs, "train_and_save", lambda *a, **k: trained.append(1) or real_train(*a, **k))
    cfg = UnlearnConfig(method="GA", steps=2, forget_batch=2, retain_batch=2, seed=11)
    runs.cached_run(con.lvlm, con.dataset, data, cfg, progress=False)
    runs.cached_run(con.lvlm, con.dataset, data, cfg, progress=False)
    assert len(trained) == 1  # the second call loaded the run
    losses_py = copy_root / "pubg_lib" / "losses.py"
    losses_py.write_text(
        losses_py.read_text().replace(
            "return sequence_logprob(logits, labels).mean()", "return 0.5 * sequence_logprob(logits, labels).mean()"
        )
    )
    runs.cached_run(con.lvlm, con.dataset, data, cfg, progress=False)
    assert len(trained) == 2  # the code changed: trained again, not loaded


def test_a_method_is_one_registry_entry(smoke_construction, data, monkeypatch):
    """A toy method, declared in one place with its loss, trains through the unmodified loop and sweep grid."""
    from pubg_lib import sweep
    from pubg_lib.unlearn import unlearn

    def half_ascent(logits, labels, ctx):
        return 0.5 * losses.ga_loss(logits, labels)

    monkeypatch.setitem(
        methods.METHODS,
        "HALF_GA",
        Method("HALF_GA", "half-strength gradient ascent + retain", "half_ga", "private", half_ascent, False, True),
    )
    con = smoke_construction
    run = unlearn(
        con.lvlm,
        con.dataset,
        data,
        UnlearnConfig(method="HALF_GA", steps=2, forget_batch=2, retain_batch=2, learning_rate=1e-2),
        progress=False,
    )
    assert {"half_ga", "retain_nll"} <= set(run.dynamics.columns)
    assert run.dynamics["half_ga"].notna().sum() == 2
    assert "gamma" in sweep.method_grid("HALF_GA") and "lam" not in sweep.method_grid("HALF_GA")
    lora_b = [p for n, p in run.lvlm.model.named_parameters() if "lora_B" in n]
    assert any(float(p.detach().abs().max()) > 0 for p in lora_b) and all(torch.isfinite(p).all() for p in lora_b)


def test_registry_entries_are_consistent():
    for m in methods.METHODS.values():
        assert (m.loss is None) == (m.term is None) == (m.target is None)
        assert m.target is None or m.target in methods.TARGETS
    with pytest.raises(ValueError, match="go together"):
        Method("BAD", "a term without a loss", "bad", "private", None, False, True)
    assert Path(methods.__file__).name == "methods.py"
