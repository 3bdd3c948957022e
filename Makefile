# `make run`: the main job (quick profile, every installed framework) -> results/
# `make test`: the test suite. Both create .venv and install rnnbench with every framework.
# `make legacy`: .venv-legacy, the seed's 2017 software on Python 3.6 (rnnbench.legacy).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test legacy clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

LEGACY_PYTHON ?= $(shell pyenv prefix 3.6.15 2>/dev/null)/bin/python
LEGACY_VENV := .venv-legacy

$(LEGACY_VENV)/.installed: legacy/requirements.txt
	$(LEGACY_PYTHON) -m venv $(LEGACY_VENV)
	$(LEGACY_VENV)/bin/python -m pip install --quiet --upgrade 'pip<22'
	$(LEGACY_VENV)/bin/python -m pip install --quiet -r legacy/requirements.txt
	touch $@

legacy: $(LEGACY_VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/rnnbench run $(ARGS)

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) results
