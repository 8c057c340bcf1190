# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench fuzz clean

install: $(STAMP)

# Re-installs only when the project's metadata changed; the package itself is editable.
# The TLS tests put the index behind Debian's nginx: installed when missing, only as root.
$(STAMP): pyproject.toml
	command -v nginx >/dev/null || test -x /usr/sbin/nginx || test "$$(id -u)" != 0 || \
		apt-get install -y --no-install-recommends nginx
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

bench: install
	$(BIN)/python -m tests.benchmarks

# The long fuzzing run; `make test` runs the same test with a small budget.
fuzz: install
	FUZZ_EXAMPLES=300 $(BIN)/pytest tests/integration/test_fuzz.py

clean:
	rm -rf $(VENV) .dev bench-results.json
