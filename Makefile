# mlpath — the two commands are `make run` and `make test`; each sets itself up on a fresh machine.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export MLPATH_HOME ?= $(CURDIR)/.mlpath

.PHONY: setup run test bench ui clean

setup: $(STAMP)

# torch goes first and pinned: a looser pin pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/mlpath run all --profile quick

test: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks

ui: $(STAMP)
	@echo "MLflow UI on http://127.0.0.1:5000 (Ctrl-C to stop)"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(MLPATH_HOME)/mlflow.db \
		--default-artifact-root $(MLPATH_HOME)/mlartifacts --host 127.0.0.1 --port 5000

clean:
	rm -rf $(VENV) .pytest_cache
