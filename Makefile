# The two commands: `make run` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
HOST   ?= 127.0.0.1
STAMP  := $(VENV)/.installed

.PHONY: run test lint format install bench clean chromium screenshots

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11+ is required (found $$($(PYTHON) --version))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## run: the whole product on the embedded default (SQLite, in-memory layer, eager tasks).
run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	@echo ""
	@echo "Chat is running at http://$(HOST):$(PORT)/  (admin: /admin/, API docs: /api/docs/)"
	@echo ""
	exec $(BIN)/daphne -b $(HOST) -p $(PORT) chatproject.asgi:application

## chromium: Debian's browser, driven by the end-to-end tests through Playwright.
## (`playwright install` downloads a browser build of its own, which an offline
## machine cannot; the tests launch /usr/bin/chromium instead.)
CHROMIUM_INSTALL := apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then $(CHROMIUM_INSTALL); \
		elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
			sudo sh -c '$(CHROMIUM_INSTALL)'; \
		else \
			echo "The browser tests need chromium. Install it with:"; \
			echo "  sudo apt-get update && sudo apt-get install -y chromium"; \
			exit 1; \
		fi; }

## test: the suite against real PostgreSQL and Redis (found, or started throw-away).
test: $(STAMP) chromium
	$(BIN)/python tests/services.py -- $(BIN)/python -m pytest $(PYTEST_ARGS)

## screenshots: PNGs of the main screens for the README (docs/screenshots/).
screenshots: $(STAMP) chromium
	$(BIN)/python docs/screenshots/take.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache

# --- benchmarks (bench/, docs/benchmarks.md) -----------------------------------------
# Need PostgreSQL at 127.0.0.1:5432 (database chat_bench is dropped and re-created)
# and Redis at 127.0.0.1:6379 (db 12 is flushed). Servers are pinned to CPU 0, the load to CPU 1.
BENCH_STAMP := $(VENV)/.bench-installed
.PHONY: bench-full

$(BENCH_STAMP): $(STAMP) bench/requirements.txt
	$(BIN)/python -m pip install --quiet -r bench/requirements.txt
	touch $(BENCH_STAMP)

## bench: quick run (under 5 minutes): ours vs the baselines, table + bench/results/latest.json
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run --mode quick
	$(BIN)/python -m bench.plot

## bench-full: 30 s holds, 50 and 1,000 pairs, 15k idle sockets, 1M stored messages
bench-full: $(BENCH_STAMP)
	$(BIN)/python -m bench.run --mode full
	$(BIN)/python -m bench.plot
