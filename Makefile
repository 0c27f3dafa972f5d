# curtainwatch developer and CI entry points.
#   make test [PYTEST_ARGS="-k broker -x"]   make lint   make bench

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BENCHES := $(wildcard bench/ingest_drain.py bench/settle_scale.py bench/help_latency.py)
PYTEST_ARGS ?=

.PHONY: test lint bench

# Create the virtualenv only if it does not exist.
$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e ".[dev]"
	touch $@

test: $(STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	@if [ -z "$(BENCHES)" ]; then echo "bench: no benchmark scripts in bench/ yet"; fi
	@set -e; for script in $(BENCHES); do \
		echo "== $$script"; \
		$(PY) $$script; \
	done
