#!/usr/bin/env bash
# The main job on the embedded defaults: deploy the diabetes example to local Docker through a
# local Prefect server (started when none is configured), then call the live endpoint.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
if [ -z "${PREFECT_API_URL:-}" ]; then
  PREFECT_API_URL="$(bash scripts/prefect-server.sh)"
  export PREFECT_API_URL
fi
ui="${PREFECT_API_URL%/api}"
echo "[demo] Prefect API: $PREFECT_API_URL"
spec=deployments/examples/diabetes/service.yaml
status=0
.venv/bin/mldeploy deploy "$spec" || status=$?
if [ "$status" -ne 0 ]; then
  echo "[demo] the deploy failed (exit $status); the flow run in the Prefect UI at $ui shows the failed stage"
  exit "$status"
fi
echo
echo "[demo] calling the live endpoint:"
body='{"data": [[0.038, 0.051, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.020, -0.018]]}'
echo "  curl -X POST http://127.0.0.1:8890/score -H 'Content-Type: application/json' -d '$body'"
printf '  -> %s\n' "$(curl -fsS -X POST http://127.0.0.1:8890/score -H 'Content-Type: application/json' -d "$body")"
echo
echo "[demo] endpoint:  http://127.0.0.1:8890/score   (swagger: http://127.0.0.1:8890/swagger.json)"
echo "[demo] Prefect UI: $ui   (flow 'deploy-model', one task per stage, artifacts on each)"
