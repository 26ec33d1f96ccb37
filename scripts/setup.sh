#!/usr/bin/env bash
# Idempotent set-up for mldeploy on one machine: Python environment, container engine,
# local OCI registry on 127.0.0.1:5000 and a base image. Every step first checks whether
# the thing already exists or answers, and says plainly what it did.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
MLDEPLOY_HOME="${MLDEPLOY_HOME:-$HOME/.mldeploy}"
VENV="${VENV:-$here/.venv}"
PYTHON="${PYTHON:-python3}"
REGISTRY_ADDR="${MLDEPLOY_REGISTRY_ADDR:-127.0.0.1:5000}"
DEFAULT_BASE_IMAGE="python:3.11-slim"
LOCAL_BASE_IMAGE="mldeploy/python:3.11-bookworm"
mkdir -p "$MLDEPLOY_HOME"

say() { printf '[setup] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
apt_install() {
  # apt-get update once per setup run, only when something must be installed.
  if [ -z "${_apt_updated:-}" ]; then as_root apt-get update -qq; _apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- Python environment -------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.mldeploy-installed"
want="$(cat constraints.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  say "installing mldeploy and its pinned dependencies (constraints.txt) into $VENV"
  "$VENV/bin/pip" install -q -c constraints.txt -e ".[dev]" 2>&1 | { grep -v "is ignored: it is neither" || true; }
  echo "$want" > "$stamp"
else
  say "virtual environment is up to date"
fi

# --- Container engine -----------------------------------------------------------------
if docker info >/dev/null 2>&1; then
  say "using the reachable Docker engine ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
else
  if ! command -v dockerd >/dev/null 2>&1; then
    command -v apt-get >/dev/null || { say "no Docker engine reachable and no apt-get to install one: install Docker and rerun"; exit 1; }
    say "no Docker engine reachable: installing Debian's docker.io"
    apt_install docker.io
  fi
  say "starting dockerd in the background (log: $MLDEPLOY_HOME/dockerd.log)"
  as_root nohup dockerd >"$MLDEPLOY_HOME/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { say "dockerd did not come up; see $MLDEPLOY_HOME/dockerd.log"; exit 1; }
  say "Docker engine is up ($(docker version --format '{{.Server.Version}}'))"
fi

# --- Local OCI registry ---------------------------------------------------------------
REGISTRY_CONFIG="$MLDEPLOY_HOME/registry/config.yml"
# Deleted manifests (the test run deletes those of its images) leave their blobs on disk until a
# garbage collection, which must not run while the registry serves (a push in flight loses its
# blobs): once the store has grown 2 GB since the last collection, stop our registry, collect, and
# start it again below.
REGISTRY_COLLECTED="$MLDEPLOY_HOME/registry/collected-mb"
store_mb() { du -sm "$MLDEPLOY_HOME/registry/data" 2>/dev/null | cut -f1; }
if [ -f "$REGISTRY_CONFIG" ] && command -v docker-registry >/dev/null 2>&1 \
    && [ "$(store_mb)" -gt "$(( $(cat "$REGISTRY_COLLECTED" 2>/dev/null || echo 0) + 2048 ))" ]; then
  pid="$(pgrep -f "docker-registry serve $REGISTRY_CONFIG" | head -n1 || true)"
  if [ -n "$pid" ]; then
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
  if ! curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; then
    before="$(du -sh "$MLDEPLOY_HOME/registry/data" | cut -f1)"
    if docker-registry garbage-collect "$REGISTRY_CONFIG" >"$MLDEPLOY_HOME/registry/gc.log" 2>&1; then
      say "registry garbage-collected: $before -> $(du -sh "$MLDEPLOY_HOME/registry/data" | cut -f1)"
      store_mb >"$REGISTRY_COLLECTED"
    else
      say "warning: registry garbage collection failed (see $MLDEPLOY_HOME/registry/gc.log)"
    fi
  fi
fi
if curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; then
  say "registry already answers on http://$REGISTRY_ADDR"
else
  if ! command -v docker-registry >/dev/null 2>&1; then
    say "installing Debian's docker-registry (distribution 2.8)"
    apt_install docker-registry
  fi
  mkdir -p "$MLDEPLOY_HOME/registry/data"
  cat >"$REGISTRY_CONFIG" <<YAML
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $MLDEPLOY_HOME/registry/data}
  delete: {enabled: true}
http:
  addr: $REGISTRY_ADDR
  relativeurls: true
YAML
  say "starting the registry on http://$REGISTRY_ADDR (log: $MLDEPLOY_HOME/registry/registry.log)"
  nohup docker-registry serve "$REGISTRY_CONFIG" >"$MLDEPLOY_HOME/registry/registry.log" 2>&1 &
  for _ in $(seq 1 40); do curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1 && break; sleep 0.25; done
  curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null || { say "registry did not come up"; exit 1; }
fi

# --- Base image -------------------------------------------------------------------------
base=""
if docker image inspect "$DEFAULT_BASE_IMAGE" >/dev/null 2>&1; then
  base="$DEFAULT_BASE_IMAGE"; say "base image $base is present"
elif timeout 60 docker pull -q "$DEFAULT_BASE_IMAGE" >/dev/null 2>&1; then
  base="$DEFAULT_BASE_IMAGE"; say "pulled base image $base"
elif docker image inspect "$LOCAL_BASE_IMAGE" >/dev/null 2>&1; then
  base="$LOCAL_BASE_IMAGE"; say "$DEFAULT_BASE_IMAGE cannot be pulled here; using the local base image $base"
else
  say "$DEFAULT_BASE_IMAGE cannot be pulled here: building $LOCAL_BASE_IMAGE with debootstrap (about a minute)"
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  mirror="$(grep -hoE '^URIs: *\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | awk '{print $2}')"
  [ -n "$mirror" ] || mirror="$(grep -hoE '^deb +\S+' /etc/apt/sources.list 2>/dev/null | head -n1 | awk '{print $2}')"
  [ -n "$mirror" ] || mirror="http://deb.debian.org/debian"
  rootfs="$(mktemp -d)"
  as_root debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$rootfs" "$mirror" >"$MLDEPLOY_HOME/debootstrap.log" 2>&1 \
    || { say "debootstrap failed; see $MLDEPLOY_HOME/debootstrap.log"; exit 1; }
  as_root tar -C "$rootfs" -c . | docker import -c 'ENV LANG=C.UTF-8' - "$LOCAL_BASE_IMAGE" >/dev/null
  as_root rm -rf "$rootfs"
  base="$LOCAL_BASE_IMAGE"; say "built base image $base"
fi
"$VENV/bin/python" - "$MLDEPLOY_HOME/config.yaml" "$base" <<'PY'
import sys, yaml, pathlib
path, base = pathlib.Path(sys.argv[1]), sys.argv[2]
config = yaml.safe_load(path.read_text()) if path.exists() else {}
config = config or {}
if config.get("base_image") != base:
    config["base_image"] = base
    path.write_text(yaml.safe_dump(config, sort_keys=True))
    print(f"[setup] default base image set to {base} in {path}")
PY
say "ready: engine, registry http://$REGISTRY_ADDR, base image $base"
