# Two commands for a fresh machine with Python 3.11: `make reproduce` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export MPLBACKEND := Agg

.PHONY: venv test test-slow reproduce sweep smoke clean-build

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

reproduce: $(STAMP)
	$(PY) -m pubg_lib.reproduce $(ARGS)

sweep: $(STAMP)
	$(PY) -m pubg_lib.reproduce --sweep $(ARGS)

smoke: $(STAMP)
	$(PY) -m pubg_lib.reproduce --smoke $(ARGS)

clean-build:
	rm -rf build
