# RenderHub: `make demo` renders a real job on this machine, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# batchcompute 2.1.7 cannot build with setuptools >= 82 (see constraints.txt).
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt

APPS := renderhub images projects clusters jobs workflows notifications api ops

.PHONY: install demo test test-main test-embedded lint format blender wdl-tools run worker beat node bench clean

$(BIN)/.installed: requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "RenderHub needs Python 3.11 or newer"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

# Debian's Blender and bubblewrap (the renderers' sandbox) when missing and we may install
# them; otherwise say what to do.
blender:
	@command -v blender >/dev/null && command -v bwrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq blender bubblewrap; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq blender bubblewrap; \
	  else echo "Blender or bubblewrap is missing: install them with 'sudo apt-get install blender bubblewrap' and run make demo again."; exit 1; fi; }

# samtools (with wgsim), bwa and bcftools for the germline workflow demo, when we may
# install them; the render demo does not need them, so otherwise only say what to do.
wdl-tools:
	@command -v samtools >/dev/null && command -v bwa >/dev/null && command -v bcftools >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; \
	  else echo "For the workflow demo: sudo apt-get install samtools bwa bcftools"; exit 0; fi; \
	  { $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq samtools bwa bcftools; } \
	    || echo "Could not install samtools bwa bcftools; the workflow demo needs them."; }

demo: install blender wdl-tools
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py demo

# ruff, the layers (pyproject.toml [tool.importlinter]: the foundation imports no domain app,
# no cycles between apps) and the types (mypy with django-stubs and DRF's stubs).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	RENDERHUB_VAR_DIR=$$(mktemp -d) $(BIN)/mypy $(APPS)

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The whole suite against whatever DATABASE_URL / CELERY_BROKER_URL say (PostgreSQL and
# Redis in CI), then the `embedded` part again on the zero-config defaults.
test: lint test-main test-embedded

# Two workers: most tests wait on workers, renderers and the database more than they
# compute, and the suite used under one core of two on its own.
PYTEST_WORKERS ?= 2
XDIST = -n $(PYTEST_WORKERS) --dist worksteal

test-main: install
	RENDERHUB_VAR_DIR=$$(mktemp -d) $(BIN)/pytest $(XDIST)

test-embedded: install
	env -u DATABASE_URL -u CELERY_BROKER_URL RENDERHUB_VAR_DIR=$$(mktemp -d) $(BIN)/pytest $(XDIST) -m embedded

run: install
	$(BIN)/python manage.py runserver

worker: install
	$(BIN)/celery -A renderhub worker -Q renderhub,render.local -c 2 -l info

beat: install
	$(BIN)/celery -A renderhub beat -l info

# A render node on this machine for the manager at MANAGER (its Redis and its site): only
# Celery, psutil and Pillow in a venv of its own, no Django and no keys (README, "Adding
# render machines"). make node BROKER=redis://node-studio:…@manager:6379/0
#   MANAGER=https://render.example.com CLUSTER=studio [SLOTS=2] [PRIVATE_QUEUE=1]
NODE_VENV := .venv-node
$(NODE_VENV)/.installed: requirements-node.txt constraints.txt
	test -x $(NODE_VENV)/bin/python || $(PYTHON) -m venv $(NODE_VENV)
	$(NODE_VENV)/bin/pip install -q --disable-pip-version-check -r requirements-node.txt
	touch $@

node: $(NODE_VENV)/.installed blender
	@test -n "$(BROKER)" -a -n "$(CLUSTER)" || { echo "usage: make node BROKER=redis://… MANAGER=https://… CLUSTER=name [SLOTS=2]"; exit 2; }
	@# The broker URL holds the node's password: passed in the environment, never echoed
	@# or put on the command line (where any user of the machine could read it).
	@echo "starting a render node for cluster $(CLUSTER) (manager $(MANAGER))"
	@RENDERHUB_BROKER_URL="$(BROKER)" RENDERHUB_PRIVATE_QUEUE=$(PRIVATE_QUEUE) $(NODE_VENV)/bin/python -m renderhub.node --manager-url "$(MANAGER)" --cluster "$(CLUSTER)" -c $(or $(SLOTS),2)

bench: install blender
	$(BIN)/python bench/render.py --sandbox both --repeat 3
	$(BIN)/python bench/render.py --scenes short,long,uneven --skip-efficiency --skip-latency --repeat 3
	$(BIN)/python bench/sandbox.py --runs 8
	$(BIN)/python bench/render.py --broker redis://127.0.0.1:6379/14 --skip-efficiency
	# The same through a render node without keys (site, event drain and node processes).
	$(BIN)/python bench/render.py --path node --broker redis://127.0.0.1:6379/14 --database-url postgres://postgres@127.0.0.1:5432/renderhub_bench_render --repeat 3
	# 50 viewers polling the live pages, then the REST API, at 10,000 jobs / 1,000,000
	# frames; the full size is in docs/BENCHMARKS.md (--jobs 100000 --frames 10000000 ...).
	$(BIN)/python bench/viewers.py --viewers 50 --duration 30
	$(BIN)/python bench/viewers.py --viewers 50 --duration 30 --mix api
	# 100, 300 and 1,000 simulated nodes claiming and reporting through Redis to the drain.
	$(BIN)/python bench/fleet.py --nodes 100,300,1000 --seconds 30

clean:
	rm -rf $(VENV) $(NODE_VENV) .pytest_cache .ruff_cache
