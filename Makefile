# The two set-up commands: `make demo` and `make test`. Both create .venv and install biorep first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/biorep demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=25

clean:
	rm -rf $(VENV) .pytest_cache
