# Two commands run everything on a fresh machine:
#   make quick   - the main job: the `quick` scoreboard on the embedded defaults (table + plots)
#   make test    - the test suite (fast; slow learning checks: make test-slow)
# Both create .venv and install the project into it first (CPU torch pinned: see README).

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
EXTRAS ?= all

.PHONY: setup quick demo test test-slow bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# A CPU build of torch (an unpinned `torch` would pull a multi-GB CUDA build).
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-*; touch $@

quick: setup
	$(BIN)/neg bench run quick --no-report
	$(BIN)/neg bench report quick

demo: setup
	$(BIN)/neg demo

test: setup
	$(BIN)/python -m pytest -q -x -n 2 --dist loadfile

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

bench: setup
	$(BIN)/python -m benchmarks.env_speed
	$(BIN)/python -m benchmarks.train_speed

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
