# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint typecheck install install-test migrate demo browsers clean messages docs axe

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# The demo publishes comments at once (KIBITZ_MODERATION=none) so a newcomer sees theirs on the
# page; set KIBITZ_MODERATION yourself to try the others. PORT=8123 make run serves elsewhere.
run: install
	$(BIN)/kibitz demo
	KIBITZ_MODERATION=$${KIBITZ_MODERATION:-none} \
	KIBITZ_PUBLIC_URL=$${KIBITZ_PUBLIC_URL:-http://$(HOST):$(PORT)} \
	$(BIN)/kibitz serve --host $(HOST) --port $(PORT)

# Regenerate the settings tables in README.md and docs/settings.md from server/settings.py.
docs: install
	$(BIN)/python tools/settings_table.py

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

LINTED := server realtime db tests bench tools

lint: install-test
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

# Settings in pyproject.toml ([tool.mypy]); only rjsmin and rcssmin, which ship no types, are exempt.
typecheck: install-test
	$(BIN)/mypy --strict server realtime db

# Refresh web/locale/*/LC_MESSAGES/messages.po from the templates and server/ (then translate
# the new entries; tests/test_i18n.py fails while any German translation is missing).
messages: install
	mkdir -p build
	$(BIN)/pybabel extract -F babel.cfg --omit-header --no-location -o build/messages.pot .
	$(BIN)/pybabel update -i build/messages.pot -d web/locale -D messages --no-fuzzy-matching --ignore-obsolete

# axe-core for the accessibility check in tests/browser/test_accessibility.py (from npm).
axe: build/axe/node_modules/axe-core/axe.min.js
build/axe/node_modules/axe-core/axe.min.js:
	mkdir -p build/axe
	npm install --prefix build/axe --no-audit --no-fund --silent axe-core@4

clean:
	rm -rf $(VENV) data test-artifacts .mypy_cache .ruff_cache
