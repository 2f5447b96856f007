# Scambio: `make run` serves the demo on SQLite; `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install run test lint typecheck pytest bench soak vectors clean messages screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/scambio db upgrade
	$(BIN)/scambio demo seed --if-empty
	$(BIN)/scambio serve --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

test: lint typecheck pytest

bench: install
	$(BIN)/python bench/append.py --db both
	$(BIN)/python bench/proofs.py
	$(BIN)/python bench/http.py

vectors: install
	$(BIN)/python -m scambio.ledger.vectorgen ledger/vectors

# Re-extract the pages' messages and merge them into the Italian catalog (then translate).
messages: install
	$(BIN)/pybabel extract -F src/scambio/web/babel.cfg -k N_ --no-location --sort-output \
		-o var/messages.pot .
	$(BIN)/pybabel update -i var/messages.pot -d src/scambio/web/locale -l it \
		--no-fuzzy-matching --ignore-obsolete --width 100

# Screenshots of the main pages on a phone, into docs/screenshots/ (Debian's Chromium).
screenshots: install
	$(BIN)/python -m tests.screenshots docs/screenshots

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
