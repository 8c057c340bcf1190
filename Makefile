# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install debian-packages run test test-fast lint bench fuzz clean

install: $(STAMP) debian-packages

# Re-installs only when the project's metadata changed; the package itself is editable.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Real servers and tools the suite runs from Debian: chromium renders the preview page, nginx
# puts the index behind TLS with client certificates, prometheus brings promtool (the alert
# rules' tests; only the binary is used). As root (CI) the missing ones are installed;
# anywhere else this names them and the tests that need them say so.
DEBIAN_PACKAGES := chromium nginx prometheus
debian-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq $$missing; \
	else echo "missing Debian packages:$$missing (install them to run every test)"; fi

run: install
	$(BIN)/upload-gateway dev

# mypy --strict over gateway/ (settings in pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

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
