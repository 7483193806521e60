#!/bin/sh
# Writes the basic-auth config from the environment (never baked into the image), then starts MLflow.
set -eu
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?set MLFLOW_AUTH_ADMIN_PASSWORD (at least 12 characters)}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY}"
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
# How long a worker trusts a checked password (0 turns the cache off); see start-native.sh.
auth_cache_ttl="${MLFLOW_AUTH_CACHE_TTL_SECONDS:-60}"
case "$auth_cache_ttl" in
  ''|*[!0-9]*) echo "MLFLOW_AUTH_CACHE_TTL_SECONDS is '$auth_cache_ttl'; expected a whole number of seconds" >&2; exit 2 ;;
esac
# Artifacts: the /mlartifacts volume, or s3://bucket[/prefix] (credentials from the environment).
artifacts_destination="${MLFLOW_ARTIFACTS_DESTINATION:-/mlartifacts}"
if [ "$artifacts_destination" != /mlartifacts ]; then
  . "$(dirname "$0")/check-artifacts.sh"
  check_artifacts_destination "$artifacts_destination" "the /mlartifacts volume"
fi
umask 077
# Compose's postgres service by default; POSTGRES_HOST and POSTGRES_PORT name another server.
case "${POSTGRES_PORT:-5432}" in
  ''|*[!0-9]*) echo "POSTGRES_PORT is '$POSTGRES_PORT'; expected a port number" >&2; exit 2 ;;
esac
db="postgresql+psycopg://mlflow:${POSTGRES_PASSWORD}@${POSTGRES_HOST:-postgres}:${POSTGRES_PORT:-5432}"
cat > /tmp/auth.ini <<INI
[mlflow]
default_permission = READ
database_uri = ${db}/mlflow_auth
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
admin_password = ${MLFLOW_AUTH_ADMIN_PASSWORD}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = ${auth_cache_ttl}
INI
export MLFLOW_AUTH_CONFIG_PATH=/tmp/auth.ini
export MLFLOW_BACKEND_STORE_URI="${db}/mlflow"
exec mlflow server --app-name basic-auth --host 0.0.0.0 --port 5000 \
  --serve-artifacts --artifacts-destination "$artifacts_destination" \
  --allowed-hosts "${MLFLOW_ALLOWED_HOSTS:-localhost:5000,127.0.0.1:5000}" --workers "${MLFLOW_WORKERS:-2}"
