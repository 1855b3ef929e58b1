# Each target bootstraps .venv itself, so a fresh clone needs only `make run` / `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MAILSIGNAL_DATA_DIR ?= $(CURDIR)/var

.PHONY: run test lint format bench docs vendor clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/mailsignal init
	$(BIN)/mailsignal demo --if-empty
	$(BIN)/mailsignal serve

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)
	$(BIN)/python bench/pixel.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

docs: $(STAMP)
	$(BIN)/python scripts/gen_docs.py

# The panel's front-end files (Swagger UI) from the npm packages pinned in assets/.
vendor: $(STAMP)
	npm ci --prefix assets --no-audit --no-fund
	$(BIN)/python scripts/vendor_assets.py
