# One target per verb. Every target does its own set-up through `install`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format bench replicate replicate-smoke clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first (pinned): an unpinned resolve would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python demo/run.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

# The strategy comparison of issue 6 on this CPU (about 2 hours on an idle 2-core machine; resumable).
replicate: $(STAMP)
	$(BIN)/python -m benchmarks.replicate.run --profile cpu --output-dir runs/replicate-cpu --publish

replicate-smoke: $(STAMP)
	$(BIN)/python -m benchmarks.replicate.run --profile cpu --output-dir runs/replicate-smoke --smoke

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
