# clipkit: two set-up commands, each bootstrapping a fresh machine on its own.
#   make study   runs the main job (the quickstart study on the embedded world)
#   make test    runs the whole test suite
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.clipkit-installed
# the torch pair that the project's machines install from their local cache
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: study test test-slow check-clean export lint env kernel clean notebooks study-notebooks docs browser

# No pip cache (a second copy of torch's ~4 GB of CUDA wheels), and torch in a call of its own, so that its
# downloaded wheels are freed before the rest come: a small CI disk holds the install's peak.
PIP   := $(PY) -m pip install -q --no-cache-dir

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) $(TORCH)
	$(PIP) $(TORCH) -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name clipkit --display-name clipkit >/dev/null
	touch $(STAMP)

env: $(STAMP)

study: $(STAMP)
	$(VENV)/bin/clipkit study run quickstart --out results/quickstart

# Notebooks are the source: `make export` writes clipkit/ from them with nbdev and cleans their metadata.
export: $(STAMP)
	$(VENV)/bin/nbdev-export
	$(VENV)/bin/nbdev-clean

# The notebooks are committed executed, outputs and all: `make notebooks` runs each module notebook in place
# (in its folder, as nbdev-test does), then cleans metadata; nbdev-clean keeps the outputs.
notebooks: $(STAMP)
	@for nb in nbs/*.ipynb; do echo "executing $$nb"; \
	  $(VENV)/bin/jupyter nbconvert --log-level WARN --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=1200 "$$nb" || exit 1; done
	$(VENV)/bin/nbdev-clean

# The study notebooks are committed executed with their default parameters, so that a reader sees each claim,
# its interval and its verdict without running anything (minutes each; their outputs go to nbs/studies/results/).
study-notebooks: $(STAMP)
	@for nb in nbs/studies/*.ipynb; do echo "executing $$nb"; \
	  $(VENV)/bin/jupyter nbconvert --log-level WARN --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=3600 "$$nb" || exit 1; done
	$(VENV)/bin/nbdev-clean

# Debian's chromium and its driver, for the site's browser check; installed where missing (as root, or with sudo).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null && \
	  $$SUDO apt-get clean; }

# The documentation site, offline: notebooks with their outputs and the API reference, rendered by Sphinx
# (myst-nb, furo) into _docs/, then opened in headless chromium; screenshots land in _docs/screenshots/.
docs: $(STAMP) browser
	$(PY) docs/build.py --out _docs

# ruff, configured in pyproject.toml: lines up to 110 characters, one statement per line, no unused names.
lint: $(STAMP)
	$(VENV)/bin/ruff format --check -q nbs tests docs
	$(VENV)/bin/ruff check nbs clipkit tests bench docs

# Exporting and cleaning must leave the checkout unchanged, and the code must pass the linter.
check-clean: $(STAMP)
	@before=$$(git status --porcelain -- nbs clipkit); \
	$(MAKE) --no-print-directory -s export; \
	after=$$(git status --porcelain -- nbs clipkit); \
	if [ "$$before" != "$$after" ]; then \
	  echo "ERROR: nbdev-export/nbdev-clean changed files: the library or the notebooks are out of step."; \
	  echo "       Review and commit these:"; git status --porcelain -- nbs clipkit; exit 1; fi; \
	echo "check-clean: nbdev-export and nbdev-clean leave no diff"
	@$(MAKE) --no-print-directory -s lint && echo "lint: ruff passes"

# Module notebooks (nbdev's runner), tests/, and every study through papermill with tiny parameters:
# one pytest run, one summary line. The long checks marked slow run in `make test-slow`; CI runs both.
test: check-clean browser
	$(VENV)/bin/python -m pytest -m "not slow" tests

test-slow: $(STAMP) browser
	$(VENV)/bin/python -m pytest -m slow tests

clean:
	rm -rf results .pytest_cache
