# Set-up and main jobs. `make test` and `make report` work from a clean clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test report install validate validate-pi bench clean

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

validate-pi: $(STAMP)
	$(BIN)/python benchmarks/pi/validate_cascades.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_speed.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_mapper.py

clean:
	rm -rf $(VENV) build *.egg-info
