# Two commands on a fresh machine: `make demo` runs the pipeline on the embedded demo
# cohort, `make test` runs the tests. Both create .venv first if it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: demo test test-fast test-slurm bench lint clean

$(BIN)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and alone: the local CPU build here, never another one pulled by a dependency
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

demo: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html

test: $(BIN)/.installed
	$(BIN)/python -m pytest -ra

test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -ra -m "not slow"

# The tiny demo through a real one-node SLURM cluster (tests/slurm/start-cluster; root).
test-slurm: $(BIN)/.installed
	tests/slurm/install
	ECHO2ECG_SLURM_E2E=1 $(BIN)/python -m pytest -ra -s tests/test_slurm.py

lint: $(BIN)/.installed
	$(BIN)/snakemake --lint

bench: $(BIN)/.installed
	$(BIN)/python bench/run_all.py

clean:
	rm -rf results logs benchmarks .snakemake demo_data
