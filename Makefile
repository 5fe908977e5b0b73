# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint fmt bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/codegen-bot run

# Python's bytecode cache stays on for the tests even where PYTHONDONTWRITEBYTECODE is set:
# both workers and the bot processes the process tests start would otherwise compile (and
# pytest rewrite) every module anew, a few seconds of a run.
test: $(STAMP)
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check bot handlers tests bench
	$(BIN)/ruff format --check bot handlers tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format bot handlers tests bench
	$(BIN)/ruff check --fix bot handlers tests bench

bench: $(STAMP)
	# The flood runs even when a figure of the table falls short; the exit status says either.
	$(BIN)/python bench/run.py; table=$$?; $(BIN)/python bench/flood.py && exit $$table

bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
