"""Read infra/compose.yaml's settings without Docker, so the Postgres test runs what the stack runs.

``infra/postgres_e2e.sh`` calls this with the throwaway cluster's address and its own ports and
folders; it prints bash assignments: the database user and names from ``.env.example``, and for
the ``prefect-server`` and ``mlflow`` services their command (entrypoint + command) and their
``environment:`` block, interpolated the way ``docker compose config`` does, with the address
of the ``postgres`` service replaced by the cluster's and the container-only settings (host,
port, paths) replaced by the caller's ``--override SERVICE:KEY=VALUE``.

It refuses to print a setting that still points into a container (a path outside the caller's
work folder, the ``postgres`` host, 0.0.0.0), so a new setting in compose.yaml that the test would
silently get wrong fails the test instead. Standard library plus PyYAML (Prefect brings it).
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
COMPOSE = HERE / "compose.yaml"
ENV_EXAMPLE = HERE / ".env.example"
POSTGRES_ADDRESS = "@postgres:5432/"  # how the services reach the database inside the stack

_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """``KEY=VALUE`` lines of a compose ``.env`` file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            raise ValueError(f"{path}:{number}: not KEY=VALUE: {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
    ``${VAR:?error}``, ``${VAR?error}``."""
    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        missing = value is None or (value == "" and op is not None and op.startswith(":"))
        if op and op.endswith("-"):
            return interpolate(arg, env) if missing else value
        if op and op.endswith("?"):
            if missing:
                raise ValueError(f"required variable {name} is missing a value: {arg}")
            return value
        return value or ""

    return _VARIABLE.sub(substitute, text)


def load_compose(path: Path = COMPOSE) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def service_settings(compose: dict, service: str, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """A service's command line (entrypoint + command) and environment, interpolated."""
    spec = compose["services"][service]
    argv = [interpolate(a, env) for a in _as_list(spec.get("entrypoint")) + _as_list(spec.get("command"))]
    environment = spec.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    values = {k: interpolate("" if v is None else str(v), env) for k, v in environment.items()}
    return argv, values


def _local_settings(compose: dict, service: str, env: dict[str, str], postgres: str,
                    overrides: dict[str, str], workdir: Path) -> tuple[list[str], dict[str, str]]:
    argv, values = service_settings(compose, service, env)
    values = {k: v.replace(POSTGRES_ADDRESS, f"@{postgres}/") for k, v in values.items()}
    values.update(overrides)
    for key, value in values.items():
        container_path = value.startswith("/") and not Path(value).resolve().is_relative_to(workdir.resolve())
        if container_path or "@postgres:" in value or "0.0.0.0" in value:
            raise ValueError(f"{service}: {key}={value} only makes sense inside the compose stack; "
                             "map it in infra/postgres_e2e.sh (--override)")
    return argv, values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compose", type=Path, default=COMPOSE)
    parser.add_argument("--env-file", type=Path, default=ENV_EXAMPLE)
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="override a variable of the env file (the password)")
    parser.add_argument("--postgres", required=True, metavar="HOST:PORT",
                        help="where the throwaway cluster listens")
    parser.add_argument("--workdir", type=Path, required=True,
                        help="paths in the printed settings must lie under it")
    parser.add_argument("--override", action="append", default=[], metavar="SERVICE:KEY=VALUE")
    args = parser.parse_args(argv)

    env = read_env_file(args.env_file)
    env.update(item.split("=", 1) for item in args.var)
    overrides: dict[str, dict[str, str]] = {}
    for item in args.override:
        service, _, assignment = item.partition(":")
        key, _, value = assignment.partition("=")
        overrides.setdefault(service, {})[key] = value
    compose = load_compose(args.compose)

    lines = [f"E2E_{name}={shlex.quote(env[name])}"
             for name in ("POSTGRES_USER", "POSTGRES_PASSWORD", "PREFECT_DB", "MLFLOW_DB")]
    for service in ("prefect-server", "mlflow"):
        command, values = _local_settings(compose, service, env, args.postgres,
                                          overrides.get(service, {}), args.workdir)
        prefix = "E2E_" + service.split("-")[0].upper()
        lines.append(f"{prefix}_CMD=({' '.join(shlex.quote(a) for a in command)})")
        lines.append(f"{prefix}_ENV=({' '.join(shlex.quote(f'{k}={v}') for k, v in values.items())})")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (KeyError, ValueError) as exc:
        print(f"compose_env: {exc}", file=sys.stderr)
        sys.exit(1)
