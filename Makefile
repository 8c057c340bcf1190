# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install chromium run test lint bench fuzz clean

install: $(STAMP) chromium

# Re-installs only when the project's metadata changed; the package itself is editable.
# The TLS tests put the index behind Debian's nginx: installed when missing, only as root.
$(STAMP): pyproject.toml
	command -v nginx >/dev/null || test -x /usr/sbin/nginx || test "$$(id -u)" != 0 || \
		apt-get install -y --no-install-recommends nginx
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The preview page's browser test renders it in Debian's chromium: as root (CI) it is
# installed when missing; anywhere else the test says what is missing.
chromium:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && apt-get install -y -qq chromium; }

run: install
	$(BIN)/upload-gateway dev

# mypy --strict over gateway/ (settings in pyproject.toml). Off by default until the whole
# package is clean; `make lint MYPY=1` runs it now.
MYPY ?= 0

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	if [ "$(MYPY)" = 1 ]; then $(BIN)/mypy; fi

test: install lint
	$(BIN)/pytest

bench: install
	$(BIN)/python -m tests.benchmarks

# The long fuzzing run; `make test` runs the same test with a small budget.
fuzz: install
	FUZZ_EXAMPLES=300 $(BIN)/pytest tests/integration/test_fuzz.py

clean:
	rm -rf $(VENV) .dev bench-results.json
