# make demo   provision a throwaway VPS container with site.yml and print its URL
# make test   lint, Python tests and every Molecule scenario on Debian 12 and 13
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The EL7 controller: ansible-core 2.16, which still manages CentOS 7 targets.
# Its Python must be 3.10-3.12 (Debian 12's python3 is 3.11).
PYTHON_EL7 ?= $(PYTHON)
VENV_EL7 := .venv-el7
BIN_EL7 := $(VENV_EL7)/bin
# Scenarios that run under the EL7 controller: molecule/<scenario>/controller holds `el7`.
EL7_SCENARIOS := $(patsubst molecule/%/controller,%,$(shell grep -lx el7 molecule/*/controller 2>/dev/null))
MODE ?= embedded
DEMO_NAME := django-vps-demo
DEMO_PORT ?= 8080
DEMO_SSH_PORT ?= 2222
export DEMO_SSH_PORT
# HTTPS with a self-signed certificate, on the same port inside the container
# and on 127.0.0.1 (inventory/demo reads it).
DEMO_TLS_PORT ?= 8443
export DEMO_TLS_PORT
DEMO_IMAGE ?= 13
# A scenario with a `registry` file pulls public images, which this project's
# test machines cannot; it is for users who can (molecule/distros).
SCENARIOS := $(filter-out $(patsubst molecule/%/registry,%,$(wildcard molecule/*/registry)),\
	$(patsubst molecule/%/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))
# The modes scenario takes longest and sets the time of make test, and the
# machine is CPU-bound until it ends; the other scenarios and the Python
# tests run beside it at a lower CPU priority (scenario=niceness), the lower
# the sooner they would end, so that all end together rather than modes
# alone at the end. The gateway's tests run at a higher one (where the user
# may raise it): they time requests and process starts, which a saturated
# machine stretches.
SCENARIO_NICE := cpanel-sim=5 growth=10 https=10
PYTHON_TESTS_NICE := 10
GATEWAY_NICE := -10
# Every recipe line runs with the project-local containers.conf.
PODMAN_ENV := source scripts/env.sh &&

export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: venv venv-el7 help demo demo-clean test lint test-python test-server test-molecule images image-13 image-12 image-tools host-packages bench bench-gateway

help:
	@echo "make demo [MODE=<mode>]           provision a local throwaway VPS and print its URL"
	@echo "                                  (modes: embedded daemon fastcgi fcgid cgi relay)"
	@echo "make demo-clean                   remove the demo VPS"
	@echo "make test                         lint + Python tests + all Molecule scenarios"
	@echo "make bench                        the six modes as deployed: req/s, p99, memory, converge times"
	@echo "                                  (15 min or more; writes README's table and docs/bench-modes.png)"
	@echo "make bench-gateway                gateway benchmark behind a hand-made Apache (prints a table)"
	@echo "make venv-el7                     the EL7 controller (ansible-core 2.16) in $(VENV_EL7)"

$(BIN)/.installed: requirements.txt server/pyproject.toml
	@echo "==> project venv ($(VENV))"
	@dpkg -s python3-venv >/dev/null 2>&1 || $(MAKE) --no-print-directory host-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet -e server
	touch $@

venv: $(BIN)/.installed

# Its own .gitignore keeps the venv out of git and of the linters that follow .gitignore.
$(VENV_EL7)/.installed: requirements-el7.txt
	@echo "==> EL7 controller venv ($(VENV_EL7))"
	@dpkg -s python3-venv >/dev/null 2>&1 || $(MAKE) --no-print-directory host-packages
	@$(PYTHON_EL7) -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))' || \
		{ echo "ansible-core 2.16 needs Python 3.10-3.12 on the controller; set PYTHON_EL7=python3.11"; exit 1; }
	$(PYTHON_EL7) -m venv $(VENV_EL7)
	echo '*' > $(VENV_EL7)/.gitignore
	$(BIN_EL7)/pip install --quiet --upgrade pip
	$(BIN_EL7)/pip install --quiet -r requirements-el7.txt
	touch $@

venv-el7: $(VENV_EL7)/.installed

# Apache's binaries and modules without the apache2 package, which would
# start a service on this host, and the headless Chromium of the https
# scenario's browser test; they install without their recommends.
HOST_PACKAGES_BARE := apache2-bin apache2-suexec-custom libapache2-mpm-itk libapache2-mod-fcgid libapache2-mod-wsgi-py3 chromium
HOST_PACKAGES := podman runc debootstrap slirp4netns uidmap fuse-overlayfs python3-venv curl openssh-client \
	$(HOST_PACKAGES_BARE)
host-packages:
	@missing=$$(for p in $(filter-out $(HOST_PACKAGES_BARE),$(HOST_PACKAGES)); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	bare=$$(for p in $(HOST_PACKAGES_BARE); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing$$bare" ]; then \
		echo "==> installing OS packages:" $$missing $$bare; \
		apt-get update -qq; \
		if [ -n "$$missing" ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
		if [ -n "$$bare" ]; then \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$bare >/dev/null; \
		fi; \
	fi

# The two debootstraps wait mostly on the network, so under make -j they
# run side by side; the tool images are layers on Debian 12's.
images: image-13 image-tools
image-13 image-12: image-%: host-packages
	$(PODMAN_ENV) scripts/build-image.sh $*
image-tools: image-12
	$(PODMAN_ENV) scripts/tool-image.sh cpsim
	$(PODMAN_ENV) scripts/tool-image.sh render

demo: venv host-packages
	$(PODMAN_ENV) scripts/build-image.sh $(DEMO_IMAGE)
	$(PODMAN_ENV) scripts/demo-vps.sh up $(DEMO_NAME) localhost/vps-debian:$(DEMO_IMAGE) $(DEMO_PORT) $(DEMO_SSH_PORT) $(DEMO_TLS_PORT)
	@echo "==> site.yml against inventory/demo (mode: $(MODE))"
	$(PODMAN_ENV) ANSIBLE_CONFIG=ansible.cfg $(BIN)/ansible-playbook site.yml -i inventory/demo \
		-e wsgi_deployment_mode=$(MODE)
	@curl -fsS -o /dev/null --retry 5 --retry-connrefused --retry-delay 1 http://127.0.0.1:$(DEMO_PORT)/
	@curl -kfsS -o /dev/null --retry 5 --retry-connrefused --retry-delay 1 https://127.0.0.1:$(DEMO_TLS_PORT)/
	@echo
	@echo "The sample app answers at https://127.0.0.1:$(DEMO_TLS_PORT)/ (mode: $(MODE)); its certificate"
	@echo "is self-signed, so browsers warn. http://127.0.0.1:$(DEMO_PORT)/ redirects there."
	@echo "How it was served: curl -k https://127.0.0.1:$(DEMO_TLS_PORT)/served-by/"

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

# tests/test_controller.py runs playbooks against the local images with both controllers.
test-python: venv venv-el7 images
	@echo "==> Python tests"
	$(BIN)/pytest tests --ignore=tests/molecule --durations=15

test-server: venv
	@echo "==> gateway tests"
	$(BIN)/pytest server/tests

# The scenarios run side by side, each in its own log; the summary lines of
# each (==>) are printed as they come, the full log of a failed one at the end.
test-molecule: venv images $(if $(EL7_SCENARIOS),venv-el7)
	@mkdir -p .cache/molecule
	@pids=(); for scenario in $(SCENARIOS); do \
		niceness=0; for pair in $(SCENARIO_NICE); do [ "$${pair%%=*}" != "$$scenario" ] || niceness=$${pair#*=}; done; \
		nice -n $$niceness scripts/molecule-scenario.sh $$scenario > .cache/molecule/$$scenario.log 2>&1 & pids+=($$!); \
	done; \
	tail -q -n +1 -F $(SCENARIOS:%=.cache/molecule/%.log) 2>/dev/null | grep --line-buffered '^==>' & tailer=$$!; \
	failed=; i=0; for scenario in $(SCENARIOS); do \
		wait $${pids[$$i]} || failed="$$failed $$scenario"; i=$$((i + 1)); \
	done; \
	sleep 1; kill $$tailer 2>/dev/null || true; \
	for scenario in $$failed; do echo "==> scenario $$scenario failed; its log:"; tail -n 150 .cache/molecule/$$scenario.log; done; \
	[ -z "$$failed" ]

# The Molecule scenarios (mostly waiting on containers) run while the Python
# and gateway suites run; what both sides need is built first, once, with
# the linters running while the images build (they use the CPU, the
# debootstraps the network).
test: venv
	@$(MAKE) --no-print-directory -j4 lint venv-el7 images
	@$(MAKE) --no-print-directory test-molecule & molecule=$$!; \
	status=0; nice -n $(PYTHON_TESTS_NICE) $(MAKE) --no-print-directory test-python || status=$$?; \
	nice -n $(GATEWAY_NICE) $(MAKE) --no-print-directory test-server || status=$$?; \
	wait $$molecule || status=1; \
	if [ $$status -eq 0 ]; then echo "==> make test: all passed"; else echo "==> make test: FAILED"; fi; \
	exit $$status

# The deployed-mode benchmark (bench/modes.py): not a test, it prints numbers.
# BENCH_ARGS passes options, e.g. BENCH_ARGS=--quick or BENCH_ARGS='--rounds 5 --keep'.
BENCH_VENV := .venv-bench
BENCH_ARGS ?=
BENCH_IMAGE ?= 13
$(BENCH_VENV)/.installed: bench/requirements.txt
	@echo "==> bench venv ($(BENCH_VENV))"
	$(PYTHON) -m venv $(BENCH_VENV)
	echo '*' > $(BENCH_VENV)/.gitignore
	$(BENCH_VENV)/bin/pip install --quiet -r bench/requirements.txt
	touch $@

bench: venv host-packages $(BENCH_VENV)/.installed
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(PODMAN_ENV) scripts/build-image.sh $(BENCH_IMAGE)
	$(PODMAN_ENV) $(BENCH_VENV)/bin/python bench/modes.py --image $(BENCH_IMAGE) $(BENCH_ARGS)

# The gateway's own benchmark: wsgate against its peers behind one Apache.
bench-gateway: venv
	$(BIN)/python server/bench/run.py
