# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint typecheck fuzz faults soak axe install install-test migrate demo browsers clean messages docs

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

# The fuzz tests of the suite with a long budget: FUZZ_EXAMPLES examples per target (each API
# operation anonymous and as staff, the form, the admin forms, the live channel, the command
# line, the importers' files), on SQLite and PostgreSQL
# (KIBITZ_TEST_DATABASE_URL). The result goes into docs/security.md ("Last long fuzz run").
FUZZ_EXAMPLES ?= 2000
fuzz: install-test
	mkdir -p build
	rm -f build/fuzz-summary.jsonl
	started=$$(date -u +%s); \
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_SUMMARY=$(CURDIR)/build/fuzz-summary.jsonl \
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/http/test_fuzz_api.py tests/http/test_fuzz_inputs.py tests/portability/test_fuzz_imports.py; \
	status=$$?; \
	$(BIN)/python tools/fuzz_summary.py build/fuzz-summary.jsonl docs/security.md \
		--examples $(FUZZ_EXAMPLES) --status $$status --seconds $$(( $$(date -u +%s) - started )); \
	exit $$status
# The long fault suite (several minutes): its own PostgreSQL and Redis, two kibitz processes,
# load, and kill -9 / SIGSTOP of each part; then the embedded default (SQLite) killed, its disk
# filled and its data directory made read-only (needs root: a loop mount). Results as in
# docs/reliability.md. CI runs the short version (tests/faults/test_faults.py).
faults: install-test
	mkdir -p build
	$(BIN)/python -m tests.faults.driver --long --json build/faults.json
	$(BIN)/python -m tests.faults.driver --long --embedded --json build/faults-embedded.json

# 30 minutes of mixed load on one process, sampling memory, file descriptors and threads each
# minute; fails on more than 10 % growth after warm-up (docs/reliability.md). Not in CI.
soak: install-test
	$(BIN)/python bench/soak.py --minutes $${MINUTES:-30} --json build/soak.json

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
