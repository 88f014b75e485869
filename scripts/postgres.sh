#!/usr/bin/env bash
# A local PostgreSQL for the test suite: installs Debian's package if missing (needs root),
# starts the default cluster, creates the role and database that DATABASE_URL names.
# Idempotent; bounded waits. Used by `make test-postgres` (and so by .ci/run).
set -euo pipefail

ROLE=${PGROLE:-resilient}
DB=${PGDATABASE_NAME:-resilient}

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk '{print $1, $2}' | grep -x "$version main" >/dev/null; then
  pg_createcluster "$version" main >/dev/null
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $4}' | grep -x online >/dev/null; then
  pg_ctlcluster "$version" main start
fi

for _ in $(seq 1 100); do  # up to 20 s
  pg_isready -q -h 127.0.0.1 && break
  sleep 0.2
done
pg_isready -h 127.0.0.1

su postgres -c "psql -v ON_ERROR_STOP=1 -q -d postgres" <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN PASSWORD '$ROLE' CREATEDB;
  END IF;
END \$\$;
SQL
if ! su postgres -c "psql -qtA -d postgres -c \"SELECT 1 FROM pg_database WHERE datname = '$DB'\"" | grep -x 1 >/dev/null; then
  su postgres -c "createdb -O $ROLE $DB"
fi
echo "PostgreSQL $version ready: postgres://$ROLE:***@127.0.0.1:5432/$DB"
