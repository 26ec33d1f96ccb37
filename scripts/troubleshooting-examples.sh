#!/usr/bin/env bash
# Reproduce the outputs quoted in docs/troubleshooting.md: each failure of the troubleshooting guide, made
# from a copy of the diabetes example, deployed locally through the real pipeline. Needs `make setup` and a
# Prefect server (PREFECT_API_URL; `make demo` starts one). Prints each command and its output.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mldeploy="$here/.venv/bin/mldeploy"
work="$(mktemp -d /tmp/mldeploy-troubleshooting.XXXXXX)"
export PREFECT_SERVER_ANALYTICS_ENABLED=false

variant() {  # variant NAME PORT: a copy of the example named NAME on PORT
  local dir="$work/$1"
  cp -r "$here/deployments/examples/diabetes" "$dir"
  sed -i "s/^name: diabetes/name: $1/; s/port: 8890/port: $2/" "$dir/service.yaml"
  echo "$dir"
}

show() {  # show COMMAND...: the command as a user types it (paths relative to the scratch folder), its output
  echo
  local typed="${*//$work\//}"
  echo "\$ ${typed//$here\/.venv\/bin\//}"
  (cd "$work" && "$@" 2>&1 | sed "s|$work/||g")
  echo "[exit $?]"
}

broken() {  # broken NAME PORT FILE SED-EXPRESSION: a variant with one line of FILE changed, deployed
  local dir
  dir=$(variant "$1" "$2")
  sed -i "$4" "$dir/$3"
  show "$mldeploy" deploy "$dir/service.yaml"
}

broken ts-build 8941 myenv.yml 's/    - joblib/    - joblib\n    - scikit-learnn==1.9.1/'
broken ts-start 8942 score.py 's/^import joblib/import joblib\nimport lightgbm/'
broken ts-model 8943 score.py 's/"sklearn_regression_model.pkl")/"sklearn_regression_model.joblib")/'
broken ts-run 8944 score.py 's/    result = model.predict(data)/    result = model.predict(data["rows"])/'
broken ts-503 8945 score.py 's/    result = model.predict(data)/    os._exit(3)/'

# "only fails remotely": what runs there, which run put it there, and the same image here
remote=$(variant ts-remote 8946)
"$mldeploy" deploy "$remote/service.yaml" >/dev/null 2>&1
show "$mldeploy" status ts-remote
show "$mldeploy" history ts-remote
show "$mldeploy" pull ts-remote --run --port 8947
show "$mldeploy" logs ts-remote --previous
# step through the run() that raised: the image under debugpy (nobody attaches here: it goes on after 2 s)
show "$mldeploy" debug "$work/ts-run/service.yaml" --debug-wait 2 --debug-port 5699

for name in ts-build ts-start ts-model ts-run ts-503 ts-remote; do "$mldeploy" delete "$name" >/dev/null 2>&1; done
docker rm -f mldeploy-pulled-ts-remote mldeploy-debug-ts-run >/dev/null 2>&1
echo
echo "(scratch folder: $work)"
