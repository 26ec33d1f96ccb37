#!/usr/bin/env bash
# Start a local Prefect server (SQLite) on 127.0.0.1:4200 unless one answers already.
# Prints the API URL on the last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MLDEPLOY_HOME="${MLDEPLOY_HOME:-$HOME/.mldeploy}"
PORT="${MLDEPLOY_PREFECT_PORT:-4200}"
api="http://127.0.0.1:$PORT/api"
if curl -fsS "$api/health" >/dev/null 2>&1; then
  echo "[server] Prefect server already answers on http://127.0.0.1:$PORT" >&2
else
  mkdir -p "$MLDEPLOY_HOME/prefect"
  echo "[server] starting a Prefect server (SQLite in $MLDEPLOY_HOME/prefect) on http://127.0.0.1:$PORT" >&2
  PREFECT_HOME="$MLDEPLOY_HOME/prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false \
    nohup "$here/.venv/bin/prefect" server start --host 127.0.0.1 --port "$PORT" \
    >"$MLDEPLOY_HOME/prefect/server.log" 2>&1 &
  for _ in $(seq 1 120); do curl -fsS "$api/health" >/dev/null 2>&1 && break; sleep 0.5; done
  curl -fsS "$api/health" >/dev/null || { echo "[server] did not start; see $MLDEPLOY_HOME/prefect/server.log" >&2; exit 1; }
fi
echo "$api"
