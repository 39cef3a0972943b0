# Two commands for a fresh machine with Python 3.11: `make reproduce` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Every resolved version, pinned: a fresh machine installs exactly what CI tested (regenerate with `make lock`).
LOCK := requirements.lock
PIP_VERSION := 26.3
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export MPLBACKEND := Agg

.PHONY: venv lock lint test test-slow mutate reproduce sweep smoke check-world figures book lab clean-build

venv: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet pip==$(PIP_VERSION)
	$(PY) -m pip install -r $(LOCK)
	$(PY) -m pip install --no-deps -e .
	$(PY) -m pip check
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "PUBG (.venv)"
	touch $(STAMP)

# Resolve pyproject's dependencies afresh in a scratch environment and pin the result (run after changing them).
lock:
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install --quiet pip==$(PIP_VERSION)
	build/lock-venv/bin/python -m pip install '.[dev]'
	echo "# pip freeze of a fresh install of '.[dev]' on CPython 3.11, x86_64 Linux (make lock)" > $(LOCK)
	build/lock-venv/bin/python -m pip freeze --exclude pubg_lib >> $(LOCK)
	rm -rf build/lock-venv

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Two pytest-xdist workers of one thread each (PYTEST_WORKERS=0: one process, the tests in file order). loadgroup:
# the two halves of the smoke pipeline (tests/test_notebooks.py, an xdist_group each) start one on each worker
# (plain load scheduling sends a worker its first chunk of tests, which held both halves).
PYTEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadgroup)

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# Mutation testing of the loss terms, the method registry, the metric definitions and the step of the unlearning
# loop (pyproject's [tool.mutmut] and MUTANTS below); stores the kill rate and the survivors in
# data/results/mutation_testing.json (equivalent ones explained in tests/equivalent_mutants.json; `mutmut show NAME`
# prints a mutant).
# Of the unlearning loop (unlearn.py), the functions that compute a step: the loss terms and their weights, the
# step (clipping, schedule, divergence), the teacher rows, the example draws and the collapse diagnostics; its
# configuration, records and set-up are left out (570 more mutants, each loading the smoke world).
MUTANTS := 'pubg_lib.losses.*' 'pubg_lib.methods.*' 'pubg_lib.metrics.*' \
	'pubg_lib.unlearn.xǁUnlearningLoopǁloss_terms__*' 'pubg_lib.unlearn.xǁUnlearningLoopǁstep__*' \
	'pubg_lib.unlearn.xǁUnlearningLoopǁshard__*' 'pubg_lib.unlearn.xǁ_Examplesǁdraw__*' \
	'pubg_lib.unlearn.x__teacher_batch__*' 'pubg_lib.unlearn.x_collapse_diagnostics__*'
# One thread per process: mutmut forks its workers from a process that has run torch, and a forked OpenMP pool
# deadlocks (every mutant then "times out").
mutate: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PUBG_CACHE=$(CURDIR)/build/cache/mutmut \
		$(VENV)/bin/mutmut run --max-children 2 $(MUTANTS)
	$(PY) -m pubg_lib.mutation $(MUTANTS)

reproduce: $(STAMP)
	$(PY) -m pubg_lib.reproduce $(ARGS)

sweep: $(STAMP)
	$(PY) -m pubg_lib.reproduce --sweep $(ARGS)

smoke: $(STAMP)
	$(PY) -m pubg_lib.reproduce --smoke $(ARGS)

# JupyterLab on the notebooks, with the compendium's environment as the kernel (the executed copies of the last
# `make reproduce`, with outputs and figures, are in build/notebooks/).
lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

# The world model on several seeds and thread counts, one pretraining per variant (each a quarter of an hour or
# more on 2 cores); writes world_robustness.json. Variants measured elsewhere: ARGS="--stage world --from-rows ...".
# Every figure drawn from a stored table, redrawn from data/results/ without training (PNG and PDF into figures/;
# e.g. ARGS="--formats png svg --out build/figures"); the figures it cannot redraw are listed with the reason.
figures: $(STAMP)
	$(PY) -m pubg_lib.figures $(ARGS)

# The executed notebooks of the last make reproduce (and make sweep) as a static site: build/book/index.html.
book: $(STAMP)
	$(PY) -m pubg_lib.book $(ARGS)

check-world: $(STAMP)
	$(PY) -m pubg_lib.robustness $(ARGS)

clean-build:
	rm -rf build
