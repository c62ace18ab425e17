# Set-up and main jobs. `make test` and `make report` work from a clean clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test report install validate validate-pi validate-accelforge calibrate-pi bench fuzz fuzz-simulate clean gpu-calibration

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

report: $(STAMP)
	$(BIN)/cascadesim report --out reports

validate: $(STAMP)
	$(BIN)/python benchmarks/peers/scalesim_check.py

# AccelForge needs Python >= 3.12: its own venv from pyenv's 3.12.1 (override with AF_PYTHON=...).
AF_VENV := .venv-accelforge
AF_PYTHON ?= $(shell pyenv prefix 3.12.1 2>/dev/null)/bin/python
$(AF_VENV)/.installed:
	@$(AF_PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "AccelForge needs Python >= 3.12: set AF_PYTHON=/path/to/python3.12")'
	$(AF_PYTHON) -m venv $(AF_VENV)
	$(AF_VENV)/bin/pip install -q accelforge==1.0.467
	touch $@

validate-accelforge: $(STAMP) $(AF_VENV)/.installed
	$(BIN)/python benchmarks/peers/accelforge_check.py --accelforge-python $(AF_VENV)/bin/python

# the GPU kernel-profile parameters shipped in archsim/gpu/fitted.yaml, fitted on every undisputed
# published row of archsim/gpu/data/ (the cross-validation of `cascadesim study gpu-crossval` refits per fold)
gpu-calibration: $(STAMP)
	$(BIN)/python -m mappings.gpu_calibration

validate-pi: $(STAMP)
	$(BIN)/python benchmarks/pi/validate_cascades.py

# refits the private-inference paper-fit profile and rewrites the shipped archsim/configs/pi/paper-fit.yaml
calibrate-pi: $(STAMP)
	$(BIN)/python -m mappings.targets.private_inference.calibration

# the fuzzing of tests/test_fuzz.py at full strength: random (not the suite's fixed) examples,
# FUZZ_EXAMPLES per property; prints and writes the counts of inputs, crashes and hangs
FUZZ_EXAMPLES ?= 1000
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=explore CASCADESIM_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
	CASCADESIM_FUZZ_SUMMARY=tests/fuzz_corpus/last_run.txt $(BIN)/python -m pytest tests/test_fuzz.py -q -s
	CASCADESIM_KERNEL_FUZZ=1 $(BIN)/python -m pytest tests/test_kernel_codegen.py -q

# differential testing of simulate (tests/test_fuzz_simulate.py): FUZZ_SIM_EXAMPLES random (cascade,
# architecture, spec) triples, every result certified, steady == exact within 1% where exact is cheap
FUZZ_SIM_EXAMPLES ?= 10000
fuzz-simulate: $(STAMP)
	HYPOTHESIS_PROFILE=explore CASCADESIM_FUZZ_SIM_EXAMPLES=$(FUZZ_SIM_EXAMPLES) \
	CASCADESIM_FUZZ_SIM_SUMMARY=tests/fuzz_corpus/last_simulate_run.txt $(BIN)/python -m pytest tests/test_fuzz_simulate.py -q -s

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_speed.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_mapper.py
	$(BIN)/python benchmarks/bench_large_cascade.py
	$(BIN)/python benchmarks/bench_certify.py
	$(BIN)/python benchmarks/bench_fuse.py
	$(BIN)/python benchmarks/bench_startup.py

clean:
	rm -rf $(VENV) $(AF_VENV) build *.egg-info
