# make demo   provision a throwaway VPS container with site.yml and print its URL
# make test   lint, Python tests and every Molecule scenario on Debian 12 and 13
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MODE ?= embedded
DEMO_NAME := django-vps-demo
DEMO_PORT ?= 8080
DEMO_SSH_PORT ?= 2222
export DEMO_SSH_PORT
DEMO_IMAGE ?= 13
SCENARIOS := $(patsubst molecule/%/molecule.yml,%,$(wildcard molecule/*/molecule.yml))
# Every recipe line runs with the project-local containers.conf.
PODMAN_ENV := source scripts/env.sh &&

export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: venv help demo demo-clean test lint test-python test-server test-molecule images host-packages bench

help:
	@echo "make demo [MODE=<mode>]           provision a local throwaway VPS and print its URL"
	@echo "                                  (modes: embedded daemon fastcgi fcgid cgi relay)"
	@echo "make demo-clean                   remove the demo VPS"
	@echo "make test                         lint + Python tests + all Molecule scenarios"
	@echo "make bench                        gateway benchmark (prints a table)"

$(BIN)/.installed: requirements.txt server/pyproject.toml
	@echo "==> project venv ($(VENV))"
	@dpkg -s python3-venv >/dev/null 2>&1 || $(MAKE) --no-print-directory host-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet -e server
	touch $@

venv: $(BIN)/.installed

HOST_PACKAGES := podman runc debootstrap slirp4netns uidmap fuse-overlayfs python3-venv curl openssh-client
host-packages:
	@missing=$$(for p in $(HOST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "==> installing OS packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

images: host-packages
	$(PODMAN_ENV) scripts/build-image.sh 13
	$(PODMAN_ENV) scripts/build-image.sh 12

demo: venv host-packages
	$(PODMAN_ENV) scripts/build-image.sh $(DEMO_IMAGE)
	$(PODMAN_ENV) scripts/demo-vps.sh up $(DEMO_NAME) localhost/vps-debian:$(DEMO_IMAGE) $(DEMO_PORT) $(DEMO_SSH_PORT)
	@echo "==> site.yml against inventory/demo (mode: $(MODE))"
	$(PODMAN_ENV) ANSIBLE_CONFIG=ansible.cfg $(BIN)/ansible-playbook site.yml -i inventory/demo \
		-e wsgi_deployment_mode=$(MODE)
	@curl -fsS -o /dev/null --retry 5 --retry-connrefused --retry-delay 1 http://127.0.0.1:$(DEMO_PORT)/
	@echo
	@echo "The sample app answers at http://127.0.0.1:$(DEMO_PORT)/ (mode: $(MODE))"
	@echo "How it was served: curl http://127.0.0.1:$(DEMO_PORT)/served-by/"

demo-clean:
	$(PODMAN_ENV) scripts/demo-vps.sh down $(DEMO_NAME)

lint: venv
	@echo "==> yamllint"
	$(BIN)/yamllint --strict .
	@echo "==> ansible-lint (production profile)"
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/ansible-lint --profile production
	@echo "==> ruff"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test-python: venv
	@echo "==> Python tests"
	$(BIN)/pytest tests --ignore=tests/molecule

test-server: venv
	@echo "==> gateway tests"
	$(BIN)/pytest server/tests

# The scenarios run side by side, each in its own log; the summary lines of
# each (==>) are printed as they come, the full log of a failed one at the end.
test-molecule: venv images
	@mkdir -p .cache/molecule
	@pids=(); for scenario in $(SCENARIOS); do \
		scripts/molecule-scenario.sh $$scenario > .cache/molecule/$$scenario.log 2>&1 & pids+=($$!); \
	done; \
	tail -q -n +1 -F $(SCENARIOS:%=.cache/molecule/%.log) 2>/dev/null | grep --line-buffered '^==>' & tailer=$$!; \
	failed=; i=0; for scenario in $(SCENARIOS); do \
		wait $${pids[$$i]} || failed="$$failed $$scenario"; i=$$((i + 1)); \
	done; \
	sleep 1; kill $$tailer 2>/dev/null || true; \
	for scenario in $$failed; do echo "==> scenario $$scenario failed; its log:"; tail -n 150 .cache/molecule/$$scenario.log; done; \
	[ -z "$$failed" ]

test: lint test-python test-server test-molecule
	@echo "==> make test: all passed"

bench: venv
	$(BIN)/python server/bench/run.py
