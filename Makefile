# Laptop and CI entry points. The Dockerfile repeats the two `pip install`
# lines of the $(INSTALLED) recipe word for word; tests/deploy checks that.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
CELERY_CONCURRENCY ?= 2
PYTEST_ARGS ?=

# Stamp files: pip only runs again when a requirements file changes.
INSTALLED := $(VENV)/.installed
INSTALLED_DEV := $(VENV)/.installed-dev

.DEFAULT_GOAL := help
.PHONY: help install install-dev run worker beat lint test screenshots bench evaluate clean distclean

help:
	@echo "make run       install into $(VENV), migrate, seed the demo on the first embedded run (or DEMO=1), serve on 127.0.0.1:$${PORT:-8000}"
	@echo "make install   create $(VENV) and install requirements.txt"
	@echo "make lint      ruff check and ruff format --check"
	@echo "make test      install requirements-dev.txt, lint, start local services if possible, run pytest"
	@echo "make screenshots  run the browser tests and update the README's docs/screenshots/*.png"
	@echo "make worker    run a Celery worker (needs REDIS_URL)"
	@echo "make beat      run Celery beat (needs REDIS_URL)"
	@echo "make bench     time the detection pipeline"
	@echo "make evaluate  build var/evalset and score the detectors on it"
	@echo "make clean     remove caches and build leftovers (keeps $(VENV) and var/)"

$(PY):
	$(PYTHON) -m venv $(VENV)

# setuptools<81 must be in the venv before requirements.txt: the ./packaging/dlib
# shim builds with it and face_recognition_models imports pkg_resources at run time.
$(INSTALLED): requirements.txt packaging/dlib/pyproject.toml | $(PY)
	$(PIP) install --upgrade pip 'setuptools<81' wheel
	$(PIP) install -r requirements.txt
	touch $@

$(INSTALLED_DEV): requirements-dev.txt $(INSTALLED)
	$(PIP) install -r requirements-dev.txt
	touch $@

install: $(INSTALLED)

install-dev: $(INSTALLED_DEV)

run: $(INSTALLED)
	bin/run

worker: $(INSTALLED)
	$(VENV)/bin/celery -A proctor worker -Q celery,housekeeping -l info --concurrency $(CELERY_CONCURRENCY)

beat: $(INSTALLED)
	$(VENV)/bin/celery -A proctor beat -l info -s var/celerybeat-schedule

# The defaults point pytest at the local services that .ci/ensure-services starts;
# they are exported to pytest only, never to the rest of the shell. Settings
# refuse to start without SECRET_KEY once DATABASE_URL is set, hence a test key.
lint: $(INSTALLED_DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	.ci/ensure-services --best-effort
	DATABASE_URL="$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/proctor}" \
	REDIS_URL="$${REDIS_URL:-redis://127.0.0.1:6379/0}" \
	SECRET_KEY="$${SECRET_KEY:-test-only-not-a-secret}" \
	$(PY) -m pytest $(PYTEST_ARGS)

# `make test` saves the browser tests' screenshots in the ignored test-artifacts/;
# this runs those tests with UPDATE_SCREENSHOTS=1 so they replace the README's.
screenshots:
	UPDATE_SCREENSHOTS=1 $(MAKE) test PYTEST_ARGS="tests/e2e $(PYTEST_ARGS)"

bench: $(INSTALLED)
	$(PY) -m detection bench --photos tests/data/photos

evaluate: $(INSTALLED)
	$(PY) -m detection make-evalset --photos tests/data/photos var/evalset
	$(PY) -m detection evaluate var/evalset

clean:
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf .pytest_cache .hypothesis test-artifacts packaging/dlib/build

# Also drops the virtualenv. var/ (database, secret key, evidence) is never removed here.
distclean: clean
	rm -rf $(VENV)
