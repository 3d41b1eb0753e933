# LumaPay: the two commands are `make dev` and `make test`. See the README.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Development and tests run with DEBUG on; production sets its own environment (see the README).
export DEBUG ?= true
# Start a private PostgreSQL for the command unless DATABASE_URL is set.
WITH_DATABASE := $(BIN)/python -m lumapay.embedded_database --
ARGS ?=

.PHONY: install dev test bench lock messages clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check --quiet --require-hashes -r requirements.lock
	touch $@

# The server listens where SITE_URL says (or on PORT): lumapay/dev_server.py; the banner agrees.
# SITE_URL is then exported as that address, so every process honcho starts writes the same links
# (honcho gives each process its own PORT, which must not move the links the worker writes).
# The demo clinic's EHR, a local FHIR server (ehr_sync/demo_fhir_server.py), runs beside it, and
# so does the HL7 v2 listener (port HL7_LISTENER_PORT, 2575), and a Celery worker with beat that runs
# the schedule: through Redis (or CELERY_BROKER_URL) when set (Procfile.dev), else through files
# under .local/ (Procfile.dev-without-redis).
dev: install
	$(WITH_DATABASE) $(BIN)/python -m ehr_sync.demo_fhir_server serve -- sh -c '\
	  $(BIN)/python manage.py migrate --noinput && \
	  $(BIN)/python manage.py seed_demo_clinic && \
	  LUMAPAY_DEV_SERVER=$$($(BIN)/python -m lumapay.dev_server) && export LUMAPAY_DEV_SERVER && \
	  SITE_URL="$${SITE_URL:-http://$$LUMAPAY_DEV_SERVER}" && export SITE_URL && \
	  $(BIN)/python manage.py dev_banner && \
	  if [ -n "$$REDIS_URL$$CELERY_BROKER_URL" ]; then exec $(BIN)/honcho -f Procfile.dev start; \
	  else exec $(BIN)/honcho -f Procfile.dev-without-redis start; fi'

# The import contracts in pyproject.toml ([tool.importlinter]) first: which way imports may run.
test: install
	$(BIN)/lint-imports --no-cache
	$(WITH_DATABASE) $(BIN)/python -m pytest $(ARGS)

# Benchmarks (not tests): load a million transactions once into a <DATABASE_URL's name>_bench database
# (lumapay_bench) on the same server, then print each figure beside its baseline and write benchmarks/results/latest.json.
bench: install
	$(WITH_DATABASE) $(BIN)/python -m benchmarks.run $(ARGS)

# Re-lock dependencies after editing pyproject.toml (needs the network to PyPI).
lock: install
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --generate-hashes --no-emit-index-url --no-emit-find-links --extra dev --strip-extras -o requirements.lock pyproject.toml

# Rebuild the Spanish catalogue after changing translatable text (needs gettext's msgfmt).
messages: install
	$(BIN)/python manage.py makemessages --locale es --ignore '.venv/*' --ignore 'tests/*'
	$(BIN)/python manage.py compilemessages --locale es --ignore '.venv/*'

clean:
	rm -rf $(VENV) .local staticfiles .pytest_cache
