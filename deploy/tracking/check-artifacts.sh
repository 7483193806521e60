# Sourced by start-native.sh and entrypoint.sh (POSIX sh): checks an S3 artifact destination and
# the optional endpoint, and exits 2 with one line when either is malformed.
check_artifacts_destination() {  # $1: the destination; $2: what leaving it unset means
  # A bucket name as S3 allows it (3-63 of a-z 0-9 . -), then an optional prefix without empty parts.
  if [ "$(printf '%s' "$1" | wc -l)" -ne 0 ] \
    || ! printf '%s' "$1" | grep -Eqx 's3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/([^/[:space:]]+/?)*)?'; then
    # Credentials pasted into the URI (s3://KEY:SECRET@bucket) are not echoed.
    echo "MLFLOW_ARTIFACTS_DESTINATION is '$(printf '%s' "$1" | sed -E 's#//[^/@]*@#//***@#')'; expected s3://bucket[/prefix] (or unset, for $2)" >&2
    exit 2
  fi
  case "${MLFLOW_S3_ENDPOINT_URL:-}" in
    '') unset MLFLOW_S3_ENDPOINT_URL ;;  # AWS S3 itself (boto3 refuses an empty endpoint)
    http://?*|https://?*) ;;
    *) echo "MLFLOW_S3_ENDPOINT_URL is '$MLFLOW_S3_ENDPOINT_URL'; expected http(s)://host[:port]" >&2; exit 2 ;;
  esac
}
