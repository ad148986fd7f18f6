#!/bin/sh
# Creates the Prefect and MLflow databases, owned by POSTGRES_USER.
#
# Run by the postgres image once, when it initialises an empty data volume
# (/docker-entrypoint-initdb.d), and by infra/postgres_e2e.sh against its throwaway cluster, so the
# stack and its test create the databases the same way. Idempotent. No `set -e`/`exit 0`: the
# image sources a script that is not executable, and those would change or end its own shell.
for db in "${PREFECT_DB:-prefect}" "${MLFLOW_DB:-mlflow}"; do
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
        --set db="$db" <<'SQL' || exit 1
SELECT format('CREATE DATABASE %I OWNER %I', :'db', current_user)
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
\gexec
SQL
done
