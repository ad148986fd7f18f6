#!/usr/bin/env bash
# The compose stack's configuration without Docker: one unit end to end on PostgreSQL.
#
#   MLPATH_DATA_MIRROR=../shared/data infra/postgres_e2e.sh
#
# 1. Debian's PostgreSQL (installed with apt-get when missing and run as root): a throwaway
#    cluster in a temporary folder on a free loopback port, set up as the postgres image sets up
#    its volume: superuser POSTGRES_USER with a password (scram over TCP), then the stack's own
#    infra/initdb/01-databases.sh. Names come from infra/.env.example; the password is random.
# 2. The Prefect server and the MLflow server, started with the command and the `environment:` of
#    their services in infra/compose.yaml (infra/compose_env.py), only the address of the database,
#    the ports and the folders replaced; artifacts go to a temporary folder through the server.
# 3. `mlpath run unit01 --profile quick` with PREFECT_API_URL and MLFLOW_TRACKING_URI pointing at
#    them, then psql checks that the rows landed: a COMPLETED flow run of unit01-pca in Prefect's
#    database, the run and the registered model mlpath-unit01 in MLflow's, and the run's artifacts
#    in the server's artifact store.
#
# Everything it starts is stopped on exit (trap), and the folder removed (E2E_KEEP=1 keeps it).
# Exit status 0 only if every step passed; on failure the message says which, with log tails.
# Settings: MLPATH_PYTHON (default .venv/bin/python), E2E_STARTUP_TIMEOUT (s, default 240),
# E2E_RUN_TIMEOUT (s, default 600).
set -Eeuo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA="$REPO/infra"
PY="${MLPATH_PYTHON:-$REPO/.venv/bin/python}"
BIN="$(dirname "$PY")"
STARTUP_TIMEOUT="${E2E_STARTUP_TIMEOUT:-240}"
RUN_TIMEOUT="${E2E_RUN_TIMEOUT:-600}"

log() { printf '[postgres_e2e %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
fail() {  # the logs' last lines, then the reason, last, where a reader looks first
    for f in "${WORK:-/nonexistent}"/*.log; do
        [ -s "$f" ] || continue
        printf -- '----- last lines of %s -----\n' "$(basename "$f")" >&2
        tail -n 25 "$f" >&2
    done
    log "FAILED: $*"
    exit 1
}

[ -x "$PY" ] || fail "no Python at $PY: run 'make setup' first (or set MLPATH_PYTHON)"
[ -x "$BIN/mlpath" ] && [ -x "$BIN/prefect" ] && [ -x "$BIN/mlflow" ] \
    || fail "mlpath, prefect or mlflow missing in $BIN: run 'make setup' first"
[ -n "${MLPATH_DATA_MIRROR:-}" ] \
    || log "note: MLPATH_DATA_MIRROR is not set, so the unit downloads its dataset"

# --- PostgreSQL binaries --------------------------------------------------------------------
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
PG_BIN="$(pg_bin)"
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ] || ! command -v psql >/dev/null; then
    [ "$(id -u)" = 0 ] || fail "PostgreSQL is not installed; as root this script installs it (apt-get install postgresql)"
    log "installing Debian's postgresql with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q --no-install-recommends postgresql; } >/tmp/postgres_e2e-apt.log 2>&1 \
        || { tail -n 30 /tmp/postgres_e2e-apt.log >&2; fail "apt-get install postgresql failed"; }
    PG_BIN="$(pg_bin)"
    [ -x "$PG_BIN/initdb" ] || fail "postgresql installed, but no initdb under /usr/lib/postgresql/*/bin"
fi
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || fail "running as root, but there is no postgres user to run the cluster as"
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

# --- work folder, ports, cleanup ----------------------------------------------------------
WORK="$(mktemp -d /tmp/mlpath-pg-e2e.XXXXXX)"
chmod 755 "$WORK"
PIDS=()
CHILD=
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    # the servers and a step still running each have their own process group: stop the groups
    # (uvicorn workers and all), all at once, then kill what is left after 15 s
    local pid alive groups=("${PIDS[@]}")
    [ -n "$CHILD" ] && groups+=("$CHILD")
    for pid in "${groups[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for _ in $(seq 1 75); do
        alive=0
        for pid in "${groups[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.2
    done
    for pid in "${groups[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
    if [ -f "$WORK/pgdata/postmaster.pid" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$WORK/pgdata" -m fast -w -t 60 stop >/dev/null 2>&1 \
            || as_pg "$PG_BIN/pg_ctl" -D "$WORK/pgdata" -m immediate stop >/dev/null 2>&1 || true
    fi
    if [ "${E2E_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
# A long step runs in the background, in its own process group, while the script waits for it, so
# that INT or TERM stop the script (and, through cleanup, the step) at once: bash runs traps only
# between commands.
step() {
    setsid "$@" &
    CHILD=$!
    local status=0
    wait "$CHILD" || status=$?
    CHILD=
    return "$status"
}
trap 'exit 130' INT
trap 'exit 143' TERM

read -r PG_PORT PREFECT_PORT MLFLOW_PORT < <("$PY" - <<'PY'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
PASSWORD="$("$PY" -c 'import secrets; print(secrets.token_hex(16))')"
log "work folder $WORK; ports: postgres $PG_PORT, prefect $PREFECT_PORT, mlflow $MLFLOW_PORT"

# --- the stack's settings (infra/compose.yaml + infra/.env.example) -------------------------
mkdir -p "$WORK/prefect-home" "$WORK/mlartifacts" "$WORK/client"
SETTINGS="$("$PY" "$INFRA/compose_env.py" --postgres "127.0.0.1:$PG_PORT" --workdir "$WORK" \
    --var "POSTGRES_PASSWORD=$PASSWORD" \
    --override "prefect-server:PREFECT_SERVER_API_HOST=127.0.0.1" \
    --override "prefect-server:PREFECT_SERVER_API_PORT=$PREFECT_PORT" \
    --override "prefect-server:PREFECT_UI_API_URL=http://127.0.0.1:$PREFECT_PORT/api" \
    --override "prefect-server:PREFECT_HOME=$WORK/prefect-home" \
    --override "mlflow:MLFLOW_HOST=127.0.0.1" \
    --override "mlflow:MLFLOW_PORT=$MLFLOW_PORT" \
    --override "mlflow:MLFLOW_WORKERS=1" \
    --override "mlflow:MLFLOW_ARTIFACTS_DESTINATION=$WORK/mlartifacts")" \
    || fail "could not read the stack's settings from infra/compose.yaml and infra/.env.example"
eval "$SETTINGS"
[ -n "$E2E_POSTGRES_USER" ] && [ -n "$E2E_PREFECT_DB" ] && [ -n "$E2E_MLFLOW_DB" ] \
    || fail "infra/.env.example lacks POSTGRES_USER, PREFECT_DB or MLFLOW_DB"

# --- PostgreSQL -----------------------------------------------------------------------------
log "$("$PG_BIN/postgres" --version): throwaway cluster, superuser $E2E_POSTGRES_USER"
mkdir -p "$WORK/pgdata" "$WORK/pgsocket"
printf '%s\n' "$E2E_POSTGRES_PASSWORD" >"$WORK/pwfile"
touch "$WORK/postgres.log"
chmod 700 "$WORK/pgdata"
chmod 600 "$WORK/pwfile"
[ "$(id -u)" = 0 ] && chown postgres: "$WORK/pgdata" "$WORK/pgsocket" "$WORK/pwfile" "$WORK/postgres.log"
as_pg "$PG_BIN/initdb" -D "$WORK/pgdata" --username="$E2E_POSTGRES_USER" --pwfile="$WORK/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
    >"$WORK/initdb.log" 2>&1 || fail "initdb failed"
rm -f "$WORK/pwfile"
as_pg "$PG_BIN/pg_ctl" -D "$WORK/pgdata" -l "$WORK/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $WORK/pgsocket -c fsync=off" start >/dev/null \
    || fail "PostgreSQL did not start"
# connections as the stack makes them: TCP, password
export PGHOST=127.0.0.1 PGPORT="$PG_PORT" PGUSER="$E2E_POSTGRES_USER" PGPASSWORD="$E2E_POSTGRES_PASSWORD"
POSTGRES_USER="$E2E_POSTGRES_USER" PREFECT_DB="$E2E_PREFECT_DB" MLFLOW_DB="$E2E_MLFLOW_DB" \
    sh "$INFRA/initdb/01-databases.sh" >"$WORK/initdb-script.log" 2>&1 \
    || fail "infra/initdb/01-databases.sh failed"
sql() { psql -X -v ON_ERROR_STOP=1 -qtA -d "$1" -c "$2"; }

# --- the servers --------------------------------------------------------------------------------
if ! "$PY" -c 'import psycopg' 2>/dev/null; then
    # the image installs it for the MLflow server; here it goes to the work folder, not the venv
    PSYCOPG="$(grep -o 'psycopg\[binary\]==[0-9.]*' "$INFRA/Dockerfile" | head -n 1)"
    [ -n "$PSYCOPG" ] || fail "infra/Dockerfile does not pin psycopg[binary]"
    log "installing $PSYCOPG into the work folder (the MLflow server's PostgreSQL driver)"
    "$PY" -m pip install --quiet --disable-pip-version-check --target "$WORK/pydeps" "$PSYCOPG" \
        >"$WORK/pip.log" 2>&1 || fail "pip install $PSYCOPG failed"
    E2E_MLFLOW_ENV+=("PYTHONPATH=$WORK/pydeps")
fi

BASE_ENV=("PATH=$BIN:/usr/local/bin:/usr/bin:/bin" "HOME=$WORK" "LANG=C.UTF-8" "TMPDIR=$WORK")
start() {  # name, argv...: the program from the venv, a clean environment, its own session
    local name="$1"; shift
    local -n service_env="E2E_${name^^}_ENV"
    local program="$1"; shift
    setsid env -i "${BASE_ENV[@]}" "${service_env[@]}" "$BIN/$program" "$@" \
        >"$WORK/$name.log" 2>&1 </dev/null &
    PIDS+=("$!")
    disown "$!"   # stopped by cleanup, not waited for
    log "started $name: $program $* (pid $!)"
}
DEADLINE=$((SECONDS + STARTUP_TIMEOUT))   # for both servers, which start side by side
wait_http() {  # name, url, pid
    local deadline=$DEADLINE
    until "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' "$2" 2>/dev/null; do
        kill -0 "$3" 2>/dev/null || fail "the $1 server exited while starting"
        [ "$SECONDS" -lt "$deadline" ] || fail "the $1 server did not answer $2 within ${STARTUP_TIMEOUT}s"
        sleep 2
    done
    log "$1 is up: $2"
}
start prefect "${E2E_PREFECT_CMD[@]}"
PREFECT_PID="${PIDS[-1]}"
start mlflow "${E2E_MLFLOW_CMD[@]}"
MLFLOW_PID="${PIDS[-1]}"
wait_http mlflow "http://127.0.0.1:$MLFLOW_PORT/health" "$MLFLOW_PID"
wait_http prefect "http://127.0.0.1:$PREFECT_PORT/api/health" "$PREFECT_PID"

# --- one unit end to end ------------------------------------------------------------------
log "mlpath run unit01 --profile quick (Prefect and MLflow on PostgreSQL)"
CLIENT=(env -u PREFECT_PROFILE -u MLFLOW_REGISTRY_URI
        PREFECT_API_URL="http://127.0.0.1:$PREFECT_PORT/api"
        MLFLOW_TRACKING_URI="http://127.0.0.1:$MLFLOW_PORT"
        MLPATH_HOME="$WORK/client" PREFECT_HOME="$WORK/client/prefect")
step "${CLIENT[@]}" timeout "$RUN_TIMEOUT" "$BIN/mlpath" run unit01 --profile quick >"$WORK/mlpath-run.log" 2>&1 \
    || fail "mlpath run unit01 --profile quick failed (exit $?)"
log "the unit ran; checking the rows in PostgreSQL"

# --- the rows landed ------------------------------------------------------------------------
completed="$(sql "$E2E_PREFECT_DB" "SELECT count(*) FROM flow_run r JOIN flow f ON f.id = r.flow_id
                                      WHERE f.name = 'unit01-pca' AND r.state_type = 'COMPLETED'")" \
    || fail "could not query Prefect's database $E2E_PREFECT_DB"
[ "$completed" -ge 1 ] || fail "Prefect's database has no COMPLETED flow run of unit01-pca"
log "prefect: $completed completed flow run(s) of unit01-pca in database $E2E_PREFECT_DB"

runs="$(sql "$E2E_MLFLOW_DB" "SELECT count(*) FROM runs r JOIN experiments e ON e.experiment_id = r.experiment_id
                                WHERE e.name = 'mlpath-unit01' AND r.status = 'FINISHED'")" \
    || fail "could not query MLflow's database $E2E_MLFLOW_DB"
[ "$runs" -ge 1 ] || fail "MLflow's database has no FINISHED run in experiment mlpath-unit01"
models="$(sql "$E2E_MLFLOW_DB" "SELECT count(*) FROM registered_models WHERE name = 'mlpath-unit01'")"
[ "$models" = 1 ] || fail "MLflow's database has no registered model mlpath-unit01"
versions="$(sql "$E2E_MLFLOW_DB" "SELECT count(*) FROM model_versions WHERE name = 'mlpath-unit01'")"
[ "$versions" -ge 1 ] || fail "registered model mlpath-unit01 has no version"
log "mlflow: $runs finished run(s) in mlpath-unit01, model mlpath-unit01 with $versions version(s), in database $E2E_MLFLOW_DB"

location="$(sql "$E2E_MLFLOW_DB" "SELECT artifact_location FROM experiments WHERE name = 'mlpath-unit01'")"
case "$location" in
    mlflow-artifacts:*) ;;
    *) fail "experiment mlpath-unit01 stores its artifacts at $location, on the client, not in the
tracking server's artifact store: in the compose stack the MLflow UI could not show them nor another
container load the model. pipeline.registry.ensure_experiment must not set artifact_location when
MLFLOW_TRACKING_URI is an http(s) server." ;;
esac
files="$(find "$WORK/mlartifacts" -type f | wc -l)"
[ "$files" -ge 1 ] || fail "the MLflow server's artifact store $WORK/mlartifacts is empty"
log "mlflow: $files artifact file(s) in the server's store ($location)"

# --- and read back through the server, as `mlpath results` does for a user -----------------------
step "${CLIENT[@]}" timeout 120 "$BIN/mlpath" results --json >"$WORK/results.json" 2>"$WORK/mlpath-results.log" \
    || fail "mlpath results --json failed against the MLflow server"
champion="$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["unit01"]["champion_version"])' \
    "$WORK/results.json" 2>>"$WORK/mlpath-results.log")" || fail "mlpath results --json has no unit01"
[ "$champion" = 1 ] || fail "mlpath results: unit01's champion is '$champion', expected version 1"
log "mlpath results reads unit01's champion (v$champion) back from the server"

log "PASSED: unit01 ran end to end on PostgreSQL (Prefect and MLflow servers as in infra/compose.yaml)"
