# magnetohom: `make demo` runs the main job end to end at a small size, `make test` runs the tests.
# Both install what is missing first (Debian packages, venv, pinned Python deps); second runs skip it.
VENV ?= .venv
PY := $(VENV)/bin/python
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
export OMPI_MCA_rmaps_base_oversubscribe := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export OMP_NUM_THREADS ?= 1

.PHONY: setup test test-slow demo lint format bench clean

setup:
	@bash scripts/setup.sh

test: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -m "not slow" -q

test-slow: setup
	$(PY) -m pytest -m slow -q

demo: setup
	VENV=$(VENV) bash scripts/demo.sh

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format . && $(PY) -m ruff check --fix .

bench: setup
	$(PY) bench/bench_homogenize.py

clean:
	rm -rf out .pytest_cache .ruff_cache
