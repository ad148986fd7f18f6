# mlpath — the two commands are `make run` and `make test`; each sets itself up on a fresh machine.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export MLPATH_HOME ?= $(CURDIR)/.mlpath
# Offline machines (and CI) read datasets from a local mirror; ../shared/data is used when present.
export MLPATH_DATA_MIRROR ?= $(wildcard $(CURDIR)/../shared/data)

.PHONY: setup run test bench lint ui clean

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

# The Prefect and MLflow UIs on what `make run` wrote under MLPATH_HOME; Ctrl-C stops both.
PREFECT_PORT ?= 4200
MLFLOW_PORT  ?= 5000
ui: $(STAMP)
	@echo "Prefect UI: http://127.0.0.1:$(PREFECT_PORT)   MLflow UI: http://127.0.0.1:$(MLFLOW_PORT)"
	@trap 'kill 0' INT TERM EXIT; \
	PREFECT_HOME=$${PREFECT_HOME:-$(MLPATH_HOME)/prefect} PREFECT_SERVER_ANALYTICS_ENABLED=false \
	PREFECT_SERVER_API_PORT=$(PREFECT_PORT) \
		$(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT) & \
	MLFLOW_DISABLE_TELEMETRY=true $(BIN)/mlflow ui --host 127.0.0.1 --port $(MLFLOW_PORT) \
		--backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///$(MLPATH_HOME)/mlflow.db} \
		--default-artifact-root $(MLPATH_HOME)/mlartifacts & \
	wait

clean:
	rm -rf $(VENV) .pytest_cache
