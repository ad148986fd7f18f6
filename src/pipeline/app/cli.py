"""The ``mlpath`` command (also ``python -m pipeline``).

``--help`` and ``list`` import nothing heavy: torch, Great Expectations, MLflow and Prefect are
imported only by the commands that use them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from pipeline import units
from pipeline.settings import TASK_RUNNERS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlpath",
        description="A learning path into machine learning: every unit is a Prefect flow, "
                    "tracked in MLflow, its data guarded by Great Expectations.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("list", help="every unit with its title and whether it is built")

    run = commands.add_parser("run", help="run unit flows in this process",
                              description="Run unit flows; exit 0 only if all succeed.")
    run.add_argument("units", nargs="+", metavar="UNIT", help="unit ids (unit01 …) or 'all'")
    run.add_argument("--profile", choices=("quick", "full"), default="full",
                     help="quick: small data, minutes on 2 cores; full: the real run (default)")
    run.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                     help="override a flow parameter, e.g. --set max_depth=3 or "
                          "--set data_files.titanic/train.csv=/path/new.csv (repeatable)")
    run.add_argument("--runner", choices=TASK_RUNNERS, default=None,
                     help="where independent tasks run: threads (default), dask (the scheduler at "
                          "$MLPATH_DASK_ADDRESS, else a local cluster of $MLPATH_DASK_WORKERS processes) "
                          "or sequential; default $MLPATH_TASK_RUNNER")

    results = commands.add_parser("results", help="latest registered metrics per unit, from MLflow")
    results.add_argument("--json", action="store_true", help="print JSON instead of a table")

    report = commands.add_parser("report", help="build the static results site from MLflow")
    report.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="output folder (default: $MLPATH_HOME/site)")
    progress = commands.add_parser("progress", help="the curriculum, boxes ticked for code, notes and a registered run")
    progress.add_argument("--compact", action="store_true",
                          help="one line per unit or item: id, boxes, title, latest run")

    deploy = commands.add_parser("deploy", help="apply deployments/prefect.yaml to a Prefect server")
    deploy.add_argument("--api-url", help="the server's API URL (default: $PREFECT_API_URL)")
    ui = commands.add_parser("ui", help="Prefect server + worker + MLflow UI on 127.0.0.1; Ctrl-C stops them")
    ui.add_argument("--prefect-port", type=int, default=4200)
    ui.add_argument("--mlflow-port", type=int, default=5000)
    ui.add_argument("--no-deploy", action="store_true", help="keep schedule edits made in the UI")
    serve = commands.add_parser("serve", help="the sentiment API (Unit 13) on localhost; Ctrl-C stops it",
                                description="Serve mlpath-sentiment's champion (or --model) over HTTP. Every "
                                            "setting can also come from MLPATH_SERVE_* variables.")
    serve.add_argument("--port", type=int, default=None, help="default 8000 ($MLPATH_SERVE_PORT)")
    serve.add_argument("--host", default=None, help="default 127.0.0.1 ($MLPATH_SERVE_HOST)")
    serve.add_argument("--model", default=None, metavar="URI_OR_FOLDER",
                       help="default models:/mlpath-sentiment@champion ($MLPATH_SERVE_MODEL)")
    serve.add_argument("--no-batching", action="store_true", help="one inference per request (the baseline)")
    serve.add_argument("--int8", action="store_true",
                       help="Linear layers dynamically quantised to int8: faster on a CPU, probabilities move "
                            "slightly ($MLPATH_SERVE_INT8)")
    return parser


def _print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    # piped or logged output (make run in CI) has no terminal width: rich would squeeze to 80 columns
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)


def cmd_list() -> int:
    rows = [[u.id, u.title, "yes" if u.implemented else "no"] for u in units.all_units()]
    _print_table("mlpath units", ["unit", "title", "implemented"], rows)
    return EXIT_OK


def cmd_run(unit_names: list[str], profile: str, assignments: list[str]) -> int:
    from pipeline.params import build_params, parse_assignments
    from pipeline.settings import path_concurrency, task_runner_name

    try:
        selected = units.resolve_selection(unit_names)
        overrides = parse_assignments(assignments)
        build_params([u.id for u in selected], profile, overrides)  # fail fast, before Prefect starts
        task_runner_name()  # and so does a bad MLPATH_TASK_RUNNER or MLPATH_PATH_CONCURRENCY
        path_concurrency()
    except (LookupError, ValueError) as exc:
        print(f"mlpath run: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return EXIT_USAGE

    if not _home_ready("run"):  # writable, and re-rooted if moved: before Prefect or MLflow start
        return EXIT_FAILED
    from pipeline.app.interrupts import RunGuard, detach_ephemeral_server

    detach_ephemeral_server()
    import flows.learning_path as path

    unit_ids = [u.id for u in selected]
    path.PROGRESS.start(None, unit_ids, [])
    guard = RunGuard(summarize=lambda reason: _print_interrupted(profile, unit_ids, path.PROGRESS, reason),
                     started=lambda: path.PROGRESS.flow_run_id is not None,
                     units_of_run=lambda: list(path.PROGRESS.running))
    with guard:
        try:
            outcomes = path.learning_path(units=unit_ids, profile=profile, overrides=overrides)
        except BaseException as exc:  # Ctrl-C, SIGTERM, a lost Prefect API
            if guard.reason is None:
                if not (isinstance(exc, KeyboardInterrupt) or _is_api_error(exc)):
                    raise
                if isinstance(exc, KeyboardInterrupt):
                    guard.interrupt("interrupted by SIGINT (Ctrl-C)", 130)
                else:
                    guard.lost_api = True
                    guard.interrupt(f"lost the Prefect API: {type(exc).__name__}: {exc}", EXIT_FAILED)
            guard.cleanup(path.PROGRESS.flow_run_id)
            guard.summarize_once()
            return guard.exit_code
    columns, rows = run_table(outcomes)
    _print_table(f"mlpath run ({profile})", columns, rows)
    for outcome in outcomes:
        if outcome["status"] != "succeeded":
            print(f"\n{outcome['unit']} failed:\n{outcome['error']}", file=sys.stderr)
    return EXIT_OK if all(o["status"] == "succeeded" for o in outcomes) else EXIT_FAILED


@contextmanager
def runner_setting(runner: str | None):
    """``MLPATH_TASK_RUNNER`` set to ``runner`` for one run (the flows read the setting, as a
    deployment's job variables set it); unchanged when ``runner`` is None."""
    previous = os.environ.get("MLPATH_TASK_RUNNER")
    if runner:
        os.environ["MLPATH_TASK_RUNNER"] = runner
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MLPATH_TASK_RUNNER", None)
        else:
            os.environ["MLPATH_TASK_RUNNER"] = previous


def _is_api_error(exc: BaseException) -> bool:
    """An error talking to the Prefect API (connection refused, timeouts, HTTP errors)."""
    import httpx

    return isinstance(exc, httpx.HTTPError)


def _print_interrupted(profile: str, unit_ids: list[str], progress, reason: str) -> None:
    """The summary of an interrupted run: the units that finished, those running as interrupted."""
    outcomes = list(progress.outcomes)
    done = {o["unit"] for o in outcomes}
    outcomes += [{"unit": unit_id, "status": "interrupted", "error": reason,
                  "primary_metric": units.get_unit(unit_id).primary_metric}
                 for unit_id in list(progress.running) if unit_id not in done]
    columns, rows = run_table(outcomes)
    _print_table(f"mlpath run ({profile}): interrupted", columns, rows)
    not_run = [uid for uid in (progress.units or unit_ids) if uid not in {o["unit"] for o in outcomes}]
    print(f"\nmlpath run {reason}" + (f"; not run: {', '.join(not_run)}" if not_run else ""),
          file=sys.stderr, flush=True)


def run_table(outcomes: list[dict]) -> tuple[list[str], list[list[str]]]:
    """``mlpath run``'s final table: per unit its status, metric, model version and alias, why that
    alias ("tied champion v1 at 1.0000 (quick)"), and the MLflow run; an error column if one failed."""
    failed = any(o["status"] != "succeeded" for o in outcomes)
    columns = ["unit", "status", "metric", "value", "model", "why", "MLflow run"] + (["error"] if failed else [])
    rows = []
    for outcome in outcomes:
        value = outcome.get("value")
        row = [
            outcome["unit"], outcome["status"], outcome.get("primary_metric") or "",
            f"{value:.4f}" if isinstance(value, float) else "",
            f"v{outcome['version']} @{outcome['alias']}" if outcome.get("version") else "",
            outcome.get("reason") or "",
            outcome.get("run_name") or "",
        ]
        if failed:
            row.append(outcome["error"].splitlines()[0] if outcome.get("error") else "")
        rows.append(row)
    return columns, rows


def cmd_results(as_json: bool) -> int:
    from pipeline.registry import latest_results

    results = latest_results([u.id for u in units.all_units()])
    if as_json:
        print(json.dumps(results, indent=2))
        return EXIT_OK
    rows = [[uid, r["primary_metric"] or "", f"{r['metrics'].get(r['primary_metric'], float('nan')):.4f}",
             f"v{r['version']}", f"v{r['champion_version']}" if r["champion_version"] else "",
             r["profile"] or ""] for uid, r in results.items()]
    _print_table("latest registered results", ["unit", "metric", "value", "newest", "champion",
                                               "profile"], rows)
    return EXIT_OK


def cmd_report(out: Path | None) -> int:
    from pipeline.app.site import build_site, default_site_dir

    print(f"portfolio: {build_site(out or default_site_dir()).resolve().as_uri()}")
    return EXIT_OK


def cmd_progress(compact: bool = False) -> int:
    from pipeline.app.progress import compact_progress, print_progress, progress

    rows = progress()
    if compact:
        try:
            print(compact_progress(rows), flush=True)
        except BrokenPipeError:  # `mlpath progress --compact | head`
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python then exits quietly
    else:
        print_progress(rows)
    return EXIT_OK


def cmd_deploy(api_url: str | None) -> int:
    from pipeline.app.deploy import DeploymentError, apply_deployments

    try:
        print("\n".join(apply_deployments(api_url)))
    except DeploymentError as exc:
        print(f"mlpath deploy: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_ui(prefect_port: int, mlflow_port: int, deploy: bool) -> int:
    from pipeline.app.services import start_ui

    return start_ui(prefect_port, mlflow_port, deploy=deploy)


def cmd_serve(port: int | None, host: str | None, model: str | None, batching: bool, int8: bool = False) -> int:
    from pipeline.serving.config import ServingConfigError
    from pipeline.serving.server import serve

    try:
        return serve(port=port, host=host, model=model, batching=None if batching else False,
                     int8=True if int8 else None)
    except ServingConfigError as exc:
        print(f"mlpath serve: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _home_ready(command: str) -> bool:
    """MLPATH_HOME writable and, if moved, re-rooted (`settings.prepare_home`); else one line on stderr."""
    from pipeline.settings import HomeError, prepare_home

    try:
        prepare_home()
    except HomeError as exc:
        print(f"mlpath {command}: {exc}", file=sys.stderr)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        return cmd_list()
    if args.command in ("results", "report", "ui", "serve") and not _home_ready(args.command):
        return EXIT_FAILED
    if args.command == "run":
        with runner_setting(args.runner):
            return cmd_run(args.units, args.profile, args.assignments)
    if args.command == "report":
        return cmd_report(args.out)
    if args.command == "progress":
        return cmd_progress(args.compact)
    if args.command == "deploy":
        return cmd_deploy(args.api_url)
    if args.command == "ui":
        return cmd_ui(args.prefect_port, args.mlflow_port, not args.no_deploy)
    if args.command == "serve":
        return cmd_serve(args.port, args.host, args.model, not args.no_batching, args.int8)
    return cmd_results(args.json)


if __name__ == "__main__":
    sys.exit(main())
