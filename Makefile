# mlpath — the two commands are `make run` and `make test`; each sets itself up on a fresh machine.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export MLPATH_HOME ?= $(CURDIR)/.mlpath
# Offline machines (and CI) read datasets from a local mirror; ../shared/data is used when present.
export MLPATH_DATA_MIRROR ?= $(wildcard $(CURDIR)/../shared/data)

.PHONY: setup run test bench lint ui deploy report clean

setup: $(STAMP)

# torch goes first and pinned: a looser pin pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/mlpath run all --profile quick

test: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check src tasks flows tests benchmarks

# Prefect (server + worker, deployments applied) and MLflow UIs on MLPATH_HOME; Ctrl-C stops all.
PREFECT_PORT ?= 4200
MLFLOW_PORT  ?= 5000
ui: $(STAMP)
	$(BIN)/mlpath ui --prefect-port $(PREFECT_PORT) --mlflow-port $(MLFLOW_PORT)

deploy: $(STAMP)
	$(BIN)/mlpath deploy --api-url $${PREFECT_API_URL:-http://127.0.0.1:$(PREFECT_PORT)/api}

report: $(STAMP)
	$(BIN)/mlpath report

clean:
	rm -rf $(VENV) .pytest_cache
