#!/usr/bin/env bash
# Start (or stop) the team tracking stack without Docker: PostgreSQL from the machine's binaries,
# then `mlflow server` with the basic-auth app, artifacts served by the server, and --allowed-hosts.
#
#   start-native.sh start    STATE_DIR [MLFLOW_PORT] [PG_PORT]
#   start-native.sh postgres STATE_DIR [PG_PORT]   PostgreSQL alone (databases mlflow and mlflow_auth,
#                                                  user mlflow), e.g. for the tracking image
#   start-native.sh stop     STATE_DIR             stops both; the data is kept for the next start
#   start-native.sh delete   STATE_DIR             stops both, then deletes PostgreSQL's files (every
#                                                  run's metadata and every user), wherever they live
#
# Secrets come from the environment only and are never put on a command line:
#   MLFLOW_AUTH_ADMIN_PASSWORD      admin password (at least 12 characters; required)
#   MLFLOW_AUTH_ADMIN_USERNAME      admin user name (default: admin)
#   MLFLOW_FLASK_SERVER_SECRET_KEY  session secret (generated into STATE_DIR when unset)
#   POSTGRES_PASSWORD               database password (generated into STATE_DIR when unset)
# Optional: MLFLOW_BIN (default: mlflow on PATH), ALLOWED_HOSTS (default: this host and port).
#   MLFLOW_AUTH_CACHE_TTL_SECONDS: how long a worker trusts a checked password (default 60; 0 is off).
#   Checking one costs a deliberately slow hash, paid by every request without the cache; with
#   it, a changed password or a deleted user may still work on other workers until it expires.
#   MLFLOW_ARTIFACTS_DESTINATION: s3://bucket[/prefix] to keep artifacts in S3 or an S3-compatible
#   store instead of STATE_DIR/artifacts. The server still serves them, so clients need no S3 access.
#   The server reads MLFLOW_S3_ENDPOINT_URL (for a store other than AWS S3) and its credentials
#   (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, or boto3's other sources) from
#   the environment; none of them goes on a command line.
set -euo pipefail

command="${1:?usage: start-native.sh start|postgres|stop|delete STATE_DIR [MLFLOW_PORT] [PG_PORT]}"
state_arg="${2:?STATE_DIR is required}"
# Paths and ports go into `su -c` command strings below: refuse what would end their quoting.
state_path="$state_arg"
[[ "$state_path" = /* ]] || state_path="$PWD/$state_arg"
case "$state_path" in
  *[\'\"\$\`\\]*) echo "STATE_DIR '$state_path' holds a quote, \$, \` or \\; expected a plain path" >&2; exit 2 ;;
esac
mlflow_port="${3:-5000}"
pg_port="${4:-5432}"
if [ "$command" = postgres ]; then pg_port="${3:-5432}"; fi
for port in "$mlflow_port" "$pg_port"; do
  if ! [[ "$port" =~ ^[1-9][0-9]{0,4}$ ]] || [ "$port" -gt 65535 ]; then
    echo "port '$port' is not a port; expected a whole number from 1 to 65535" >&2
    exit 2
  fi
done
case "$command" in
  start|postgres) state="$(mkdir -p "$state_arg" && cd "$state_arg" && pwd)" ;;
  stop|delete)
    [ -d "$state_arg" ] || { echo "STATE_DIR $state_arg does not exist; expected the folder start used" >&2; exit 2; }
    state="$(cd "$state_arg" && pwd)" ;;
  *) echo "unknown command '$command'; expected start, postgres, stop or delete" >&2; exit 2 ;;
esac
pg_user=postgres
mlflow_bin="${MLFLOW_BIN:-mlflow}"

find_pg_bin() {
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$found" ]; then
    echo "PostgreSQL server binaries not found; installing them with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    found=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  echo "$found"
}

as_pg_user() {
  # PostgreSQL refuses to run as root.
  if [ "$(id -u)" = 0 ]; then
    id "$pg_user" >/dev/null 2>&1 || useradd --system --create-home "$pg_user"
    su "$pg_user" -s /bin/bash -c "$*"
  else
    bash -c "$*"
  fi
}

secret() {  # secret NAME FILE: the variable's value, else one generated once into FILE
  local value="${!1:-}"
  if [ -z "$value" ]; then
    [ -s "$2" ] || (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$2")
    value="$(cat "$2")"
  fi
  printf '%s' "$value"
}

pg_root() {  # where PostgreSQL's own files live: inside STATE_DIR, unless its user cannot reach it
  local root="$state/pg"
  # `start` records where it put them (`pg` when inside STATE_DIR, so the folder can move), and
  # `stop` and `delete` find them there whatever changed since.
  if [ -f "$state/pg.location" ]; then
    root="$(cat "$state/pg.location")"
    if [ "$root" = pg ] || [ "$root" = "$state/pg" ]; then
      root="$state/pg"
    elif ! [[ "$root" =~ ^/var/tmp/mlflow-pg-[0-9a-f]{12}$ ]]; then
      echo "$state/pg.location names '$root'; expected pg or /var/tmp/mlflow-pg-<12 hex digits>" >&2
      exit 2
    fi
  elif [ "$(id -u)" = 0 ] && id "$pg_user" >/dev/null 2>&1 && ! su "$pg_user" -s /bin/bash -c "test -x '$state'"; then
    root="/var/tmp/mlflow-pg-$(printf '%s' "$state" | sha1sum | cut -c1-12)"
  fi
  echo "$root"
}

pg_running() {  # pg_running DATA: 0 when PostgreSQL runs on DATA or that cannot be ruled out
  local code=0
  as_pg_user "'$(find_pg_bin)/pg_ctl' -D '$1' status" >/dev/null 2>&1 || code=$?
  # pg_ctl says 3 for "not running"; anything else (4: the folder cannot be read) proves nothing.
  [ "$code" != 3 ] && return 0
  local pid
  pid="$(timeout 5 head -n 1 "$1/postmaster.pid" 2>/dev/null || true)"
  # A pid file left by a crash may name an unrelated process by now: only a postgres counts.
  [[ "$pid" =~ ^[0-9]+$ ]] && [ "$(ps -o comm= -p "$pid" 2>/dev/null || true)" = postgres ]
}

check_owner() {  # check_owner ROOT: refuse a folder under /var/tmp that another STATE_DIR started
  local owner here
  [ -f "$1/owner" ] && [ ! -L "$1/owner" ] || return 0
  owner="$(cat "$1/owner")"
  here="$(cd "$state" && pwd -P)"
  # A copy of STATE_DIR (a backup) records the same folder: it must not stop or delete the
  # original's database. A STATE_DIR that was moved finds its old path gone.
  if [ "$owner" != "$here" ] && [ -d "$owner" ]; then
    echo "$1 belongs to $owner, not $here (a copy of that folder?); nothing done" >&2
    exit 2
  fi
}

stop_stack() {
  if [ -s "$state/mlflow.pid" ]; then
    local pid
    pid="$(cat "$state/mlflow.pid")"
    # After a reboot the number may be another process's: signal only an MLflow server.
    # (No `ps | grep -q` under pipefail: grep leaving early could fail ps and the whole test.)
    if ! [[ "$pid" =~ ^[1-9][0-9]*$ ]] || [[ "$(ps -o args= -p "$pid" 2>/dev/null || true)" != *mlflow* ]]; then
      pid=""
    fi
    [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    # MLflow hands the signal to its uvicorn workers and exits after them: wait, so none outlives `stop`.
    for _ in $(seq 60); do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$state/mlflow.pid"
  fi
  local data started_on
  data="$1/data"
  if [ -f "$data/PG_VERSION" ]; then
    # A copy of the data folder holds the original's pid file: pg_ctl would stop the original.
    started_on="$(timeout 5 sed -n 2p "$data/postmaster.pid" 2>/dev/null || true)"
    if [ -n "$started_on" ] && [ -d "$started_on" ] && [ "$(cd "$started_on" && pwd -P)" != "$(cd "$data" && pwd -P)" ]; then
      echo "$data/postmaster.pid is $started_on's (a copy of that folder?); not stopped" >&2
      exit 2
    fi
    as_pg_user "'$(find_pg_bin)/pg_ctl' -D '$data' -m fast stop" >/dev/null 2>&1 || true
    if pg_running "$data"; then
      echo "PostgreSQL in $data still runs (or its folder cannot be read) after stop" >&2
      exit 1
    fi
  fi
}

if [ "$command" = stop ]; then
  root="$(pg_root)"
  check_owner "$root"
  stop_stack "$root"
  echo "Stopped; PostgreSQL's data for $state is kept in $root"
  exit 0
fi
if [ "$command" = delete ]; then
  root="$(pg_root)"
  # Only a PostgreSQL folder this script made, never whatever else sits at that name.
  if [ -L "$root" ]; then
    echo "$root is a link; nothing deleted (stop, then delete what it points to yourself)" >&2
    exit 1
  fi
  if [ ! -f "$root/data/PG_VERSION" ]; then
    echo "found no PostgreSQL data for $state (looked in $root); nothing deleted" >&2
    exit 1
  fi
  check_owner "$root"
  stop_stack "$root"
  # Root keeps PostgreSQL's files outside STATE_DIR when its user cannot reach it (pg_root):
  # they would outlive STATE_DIR unless removed here.
  rm -rf "$root"
  rm -f "$state/pg.location"
  echo "Stopped; PostgreSQL's data for $state is deleted ($root)"
  exit 0
fi

check_server_settings() {  # the server's settings, refused in one line before anything starts
  admin_password="${MLFLOW_AUTH_ADMIN_PASSWORD:-}"
  if [ "${#admin_password}" -lt 12 ]; then
    echo "MLFLOW_AUTH_ADMIN_PASSWORD must be set to at least 12 characters; no default credentials are used" >&2
    exit 2
  fi
  admin_user="${MLFLOW_AUTH_ADMIN_USERNAME:-admin}"
  auth_cache_ttl="${MLFLOW_AUTH_CACHE_TTL_SECONDS:-60}"
  if ! [[ "$auth_cache_ttl" =~ ^[0-9]+$ ]]; then
    echo "MLFLOW_AUTH_CACHE_TTL_SECONDS is '$auth_cache_ttl'; expected a whole number of seconds (0 turns the credential cache off)" >&2
    exit 2
  fi
  artifacts_destination="${MLFLOW_ARTIFACTS_DESTINATION:-}"
  if [ -n "$artifacts_destination" ]; then
    . "$(dirname "$0")/check-artifacts.sh"
    check_artifacts_destination "$artifacts_destination" "STATE_DIR/artifacts"
  fi
}
[ "$command" = postgres ] || check_server_settings
pg_password="$(secret POSTGRES_PASSWORD "$state/postgres.secret")"
pg_bin="$(find_pg_bin)"
psql_bin="$pg_bin/psql"
[ -x "$psql_bin" ] || psql_bin="$(command -v psql || true)"
[ -n "$psql_bin" ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null; psql_bin=psql; }

as_pg_user "true" >/dev/null  # creates the postgres user when running as root
pg="$(pg_root)"
# The top folder stays this script's user's, so PostgreSQL's user can neither swap it for a link
# (the /var/tmp name is predictable, and the folder's owner may rename it there) nor plant links
# in it; that user owns only the folders it writes to inside. `mkdir` fails if the name exists:
# then it must be a real folder of ours, or an older start's, which PostgreSQL's user owned.
if ! mkdir -m 750 "$pg" 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && [ ! -L "$pg" ] && [ -d "$pg" ] && [ "$(stat -c %U "$pg")" = "$pg_user" ]; then
    chown -h root "$pg"
    # No older start wrote `owner`: one there now is PostgreSQL's user's, maybe a link. Now that
    # the folder is root's, nothing new can be put in it.
    rm -f "$pg/owner"
  fi
  if [ -L "$pg" ] || [ ! -d "$pg" ] || [ "$(stat -c %u "$pg")" != "$(id -u)" ]; then
    echo "$pg is a link, not a folder, or owned by '$(stat -c %U "$pg" 2>/dev/null || true)'; expected a folder this script made (remove $pg, or use another STATE_DIR)" >&2
    exit 2
  fi
fi
chmod 750 "$pg"
if [ "$(id -u)" = 0 ]; then chown -h "root:$(id -gn "$pg_user")" "$pg"; fi
for folder in data sock log; do
  if [ -L "$pg/$folder" ]; then
    echo "$pg/$folder is a link; expected a folder this script made (remove it, or use another STATE_DIR)" >&2
    exit 2
  fi
  if [ ! -d "$pg/$folder" ]; then
    mkdir -m 700 "$pg/$folder"
    if [ "$(id -u)" = 0 ]; then chown -h "$pg_user" "$pg/$folder"; fi
  fi
done
check_owner "$pg"
if [ ! -f "$pg/data/PG_VERSION" ]; then
  # The password goes in through a pipe, never a file. (`<(cat)` is a pipe of that user's own;
  # /dev/stdin would be root's.)
  printf '%s\n' "$pg_password" |
    as_pg_user "'$pg_bin/initdb' -D '$pg/data' -U mlflow --pwfile=<(cat) -A scram-sha-256 >/dev/null"
fi
if [ "$pg" = "$state/pg" ]; then
  echo pg > "$state/pg.location"
else
  # In the folder only this script's user can write to.
  (cd "$state" && pwd -P) > "$pg/owner"
  printf '%s\n' "$pg" > "$state/pg.location"
fi
as_pg_user "'$pg_bin/pg_ctl' -D '$pg/data' -l '$pg/log/postgres.log' -w -o \"-p $pg_port -k $pg/sock -c listen_addresses=127.0.0.1\" start" >/dev/null
export PGPASSWORD="$pg_password"
for database in mlflow mlflow_auth; do
  if ! "$psql_bin" -h 127.0.0.1 -p "$pg_port" -U mlflow -d postgres -tAc "select 1 from pg_database where datname='$database'" | grep -q 1; then
    "$psql_bin" -h 127.0.0.1 -p "$pg_port" -U mlflow -d postgres -qc "create database $database" >/dev/null
  fi
done
unset PGPASSWORD
if [ "$command" = postgres ]; then
  echo "PostgreSQL on 127.0.0.1:$pg_port: databases mlflow and mlflow_auth, user mlflow (data in $pg)"
  exit 0
fi

if [ -z "$artifacts_destination" ]; then
  artifacts_destination="$state/artifacts"
  mkdir -p "$artifacts_destination"
fi
flask_secret="$(secret MLFLOW_FLASK_SERVER_SECRET_KEY "$state/flask.secret")"
database_uri() { printf 'postgresql+psycopg://mlflow:%s@127.0.0.1:%s/%s' "$pg_password" "$pg_port" "$1"; }
(
  umask 077
  cat > "$state/auth.ini" <<INI
[mlflow]
default_permission = READ
database_uri = $(database_uri mlflow_auth)
admin_username = $admin_user
admin_password = $admin_password
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = $auth_cache_ttl
INI
)

export MLFLOW_AUTH_CONFIG_PATH="$state/auth.ini"
export MLFLOW_FLASK_SERVER_SECRET_KEY="$flask_secret"
# The store URI holds the database password, so it goes through the environment, not argv.
export MLFLOW_BACKEND_STORE_URI="$(database_uri mlflow)"
allowed_hosts="${ALLOWED_HOSTS:-127.0.0.1:$mlflow_port,localhost:$mlflow_port}"
nohup "$mlflow_bin" server --app-name basic-auth --host 127.0.0.1 --port "$mlflow_port" \
  --serve-artifacts --artifacts-destination "$artifacts_destination" \
  --allowed-hosts "$allowed_hosts" --workers 2 > "$state/mlflow.log" 2>&1 &
echo $! > "$state/mlflow.pid"

for _ in $(seq 240); do
  if curl -s -o /dev/null "http://127.0.0.1:$mlflow_port/health"; then
    echo "MLflow tracking server with basic-auth: http://127.0.0.1:$mlflow_port (PostgreSQL on 127.0.0.1:$pg_port, data in $pg)"
    [ "$artifacts_destination" = "$state/artifacts" ] || echo "Artifacts (served by it): $artifacts_destination"
    exit 0
  fi
  kill -0 "$(cat "$state/mlflow.pid")" 2>/dev/null || { echo "mlflow server exited; see $state/mlflow.log" >&2; tail -n 20 "$state/mlflow.log" >&2; exit 1; }
  sleep 0.5
done
echo "mlflow server did not answer within 120 s; see $state/mlflow.log" >&2
exit 1
