# The two commands that matter: `make demo` and `make test`. Each sets up .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FLOW ?= flows/b2b_supplier.yaml
LANG_ARG ?= en

.PHONY: demo test lint lock i18n setup clean

# pipefail: the progress filter below must not hide a failed install.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Sada needs Python 3.11 or newer (found: $$($(PYTHON) --version))"; exit 1; }
	@echo "Setting up $(VENV): Sada's locked dependencies, one line each (about a minute the first time)"
	$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --disable-pip-version-check --progress-bar off \
		-r requirements.lock | { grep --line-buffered -E '^(Collecting|Successfully)' || true; } | \
		sed -u -e 's/^Collecting /  · /' -e 's/ (from .*//' -e 's/^Successfully installed.*/  done/'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/sada flows lint flows
	$(BIN)/sada preview $(FLOW) --lang $(LANG_ARG)

# One pytest worker per core, plus one for the three-process test, which mostly waits on
# Telegram's rate (tests/conftest.py); each worker has its own databases.
# worksteal: a worker that runs out takes half the tests still queued on another, so the
# three-minute three-process test started first (tests/conftest.py) holds up nothing queued
# behind it.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n auto --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/sada flows lint flows

# Re-pin every dependency after editing pyproject.toml.
lock:
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

# pybabel stamps the template with the time it ran: keep the old file when only the stamp
# changed, so `make i18n` on unchanged code leaves the tree clean.
define KEEP_UNCHANGED_POT
import pathlib, re
new, old = pathlib.Path("locales/sada.pot.new"), pathlib.Path("locales/sada.pot")
def body(p): return re.sub(r'"POT-Creation-Date: [^"]*"', "", p.read_text()) if p.exists() else None
new.unlink() if body(new) == body(old) else new.replace(old)
endef
export KEEP_UNCHANGED_POT

# Bot strings: extract from the code, merge into each catalog, compile. Locations name the
# file only: line numbers would change the catalogs with every unrelated edit.
i18n: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k N_ --no-wrap --sort-by-file --add-location=file \
		--project=sada --version=0.1 -o locales/sada.pot.new bot
	@$(BIN)/python -c "$$KEEP_UNCHANGED_POT"
	$(BIN)/pybabel update -i locales/sada.pot -d locales -D sada --no-wrap --ignore-obsolete --no-fuzzy-matching
	$(BIN)/pybabel compile -d locales -D sada --statistics

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
