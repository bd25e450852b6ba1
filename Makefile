# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint docs config-reference image image-test bench lock clean browser translations chaos

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"

# Reinstall only when the dependency declarations change: later runs take a second.
$(STAMP): $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/pip install --quiet -c requirements.lock -e ".[test,docs]"
	touch $(STAMP)

# The issuer follows PORT unless the environment or .env names one.
run: $(STAMP)
	$(BIN)/authserver db upgrade
	$(BIN)/authserver keys ensure
	ISSUER="$${AUTHSERVER_ISSUER:-$$(grep -s '^AUTHSERVER_ISSUER=' .env | cut -d= -f2-)}"; \
	AUTHSERVER_ISSUER="$${ISSUER:-http://127.0.0.1:$(PORT)}" \
	exec $(BIN)/authserver serve --port $(PORT)

test: $(STAMP) browser
	@command -v jq >/dev/null && command -v curl >/dev/null || (apt-get install -y jq curl \
		|| (apt-get update && apt-get install -y jq curl))  # the guides' shell blocks use them
	$(BIN)/ruff check authserver tests examples bench deploy docs/hooks.py
	$(BIN)/mkdocs build --strict --quiet
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The guides (docs/) as a site in site/; strict: a broken link or a page left out fails.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

# docs/configuration.md from the settings declared in authserver/config.py.
config-reference: $(STAMP)
	$(BIN)/python docs/hooks.py

# The container image (Dockerfile) with docker or podman, on python:3.12-slim or, where
# no registry is reachable, a Debian base made locally; image-test runs it against a
# throwaway PostgreSQL and gets a token. Not part of `make test` (docs/development.md).
image: $(STAMP)
	$(BIN)/python deploy/image.py build

image-test: image
	$(BIN)/python deploy/image.py test

# The browser test's Chromium and its driver, from Debian's packages (nothing downloads a
# browser build); DejaVu draws the Persian pages' screenshots.
BROWSER_PACKAGES := chromium chromium-driver fonts-dejavu-core
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get install -y --no-install-recommends $(BROWSER_PACKAGES) || \
	   (apt-get update && apt-get install -y --no-install-recommends $(BROWSER_PACKAGES)))

# After changing a page's text: extract it, merge it into each language, then translate
# the new entries of authserver/web/translations/*/LC_MESSAGES/messages.po and compile.
WEB := authserver/web
translations: $(STAMP)
	$(BIN)/pybabel extract -F $(WEB)/babel.cfg -k lazy_gettext --no-location --sort-output \
	  --omit-header -o $(WEB)/translations/messages.pot .
	$(BIN)/pybabel update -i $(WEB)/translations/messages.pot -d $(WEB)/translations \
	  --width 100
	$(BIN)/pybabel compile -d $(WEB)/translations --statistics

# tests/test_faults.py for longer: CHAOS_SECONDS of refreshes around each fault (PostgreSQL
# stopped, a worker SIGKILLed, Redis stopped); its figures are printed (docs/operating.md).
CHAOS_SECONDS ?= 60
chaos: $(STAMP)
	CHAOS_SECONDS=$(CHAOS_SECONDS) $(BIN)/python -m pytest tests/test_faults.py -q -s

# Benchmarks (not part of `make test`): the real server under wrk on loopback.
BENCH_ARGS ?=
bench: $(STAMP)
	@command -v wrk >/dev/null || (apt-get install -y wrk || (apt-get update && apt-get install -y wrk))
	$(BIN)/python bench/run.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check authserver tests examples bench deploy docs/hooks.py
	$(BIN)/ruff format --check authserver tests examples bench deploy docs/hooks.py

# Refresh the pinned set after changing pyproject.toml.
lock: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test,docs]"
	$(BIN)/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

clean:
	rm -rf $(VENV) instance site .pytest_cache .ruff_cache
