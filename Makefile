# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast lint bench fuzz clean

install: $(STAMP)

# Re-installs only when the project's metadata changed; the package itself is editable.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/upload-gateway dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	$(BIN)/pytest

# The fast tier: services, publisher and sweeper over in-memory stores (seconds, no servers).
# `make test` runs it too, beside the integration suite against the real components.
test-fast: install
	$(BIN)/pytest tests/fast -q

bench: install
	$(BIN)/python -m tests.benchmarks

# The long fuzzing run; `make test` runs the same test with a small budget.
fuzz: install
	FUZZ_EXAMPLES=300 $(BIN)/pytest tests/integration/test_fuzz.py

clean:
	rm -rf $(VENV) .dev bench-results.json
