# A virtual environment in .venv holds everything; each target installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first, on its own, so the pick of build is explicit: the default is a
# fixed release (a CPU build where a local wheel or the CPU index provides one). Override, e.g.
#   make test TORCH_SPEC="torch>=2.1"
#   make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
TORCH_SPEC ?= torch==2.13.0
SEEDS ?= 0 1 2 3 4 5 6 7 8 9

.PHONY: install check test lint browser-test validate bench fuzz clean dist

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

check: install
	$(BIN)/matgrad check identities/

validate: install
	$(BIN)/matgrad validate identities/

test: install
	$(BIN)/python -m pytest -q

# ruff (style, imports, likely bugs) and mypy (strict) over the package; both must report nothing.
lint: $(VENV)/.lint-installed
	$(BIN)/ruff check matgrad tests benchmarks
	$(BIN)/mypy

$(VENV)/.lint-installed: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[test,lint]"
	touch $@

# The HTML report in a real headless Chromium, from the system packages (Debian: chromium).
# `make test` skips that test when Chromium is absent; this target installs it and requires it.
# The screenshots land in tests/artifacts/.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser-test: install
	command -v chromium >/dev/null || { $(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }
	MATGRAD_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q tests/test_report_browser.py

# The property-based tests with many more random examples (a few minutes).
fuzz: install
	MATGRAD_HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q tests/test_fuzz.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis tests/artifacts

# The wheel and the sdist for PyPI, checked by twine, then installed into a fresh environment
# and run (docs/release.md).
dist: install
	$(BIN)/python -m pip install -q -e ".[test,release]"
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/python -m twine check --strict dist/*
	MATGRAD_DIST=dist $(BIN)/python -m pytest -q tests/test_packaging.py

bench: install
	cd benchmarks && ../$(BIN)/python run_all.py
