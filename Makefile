# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench fuzz clean

install: $(STAMP)

# Re-installs only when the project's metadata changed; the package itself is editable.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
# promtool (tests of deploy/monitoring/alerts.yaml) comes with Debian's prometheus package;
# only the binary is used. Installed when missing and running as root; otherwise see
# docs/monitoring.md.
	if [ "$$(id -u)" = 0 ] && ! command -v promtool >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; fi
	touch $(STAMP)

run: install
	$(BIN)/upload-gateway dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	$(BIN)/pytest

bench: install
	$(BIN)/python -m tests.benchmarks

# The long fuzzing run; `make test` runs the same test with a small budget.
fuzz: install
	FUZZ_EXAMPLES=300 $(BIN)/pytest tests/integration/test_fuzz.py

clean:
	rm -rf $(VENV) .dev bench-results.json
