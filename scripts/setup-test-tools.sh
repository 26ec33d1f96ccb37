#!/usr/bin/env bash
# Idempotent set-up of the tools the UI tests need: Debian's chromium (a headless browser) and
# the Python package playwright (pinned in constraints.txt) in the project's virtual environment.
# Playwright's own browser download is not used: the tests launch /usr/bin/chromium.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
VENV="${VENV:-$here/.venv}"
CHROMIUM=/usr/bin/chromium

say() { printf '[test-tools] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

# --- headless browser ---------------------------------------------------------------------
if [ -x "$CHROMIUM" ]; then
  say "chromium is installed ($("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM"))"
else
  command -v apt-get >/dev/null || { say "no $CHROMIUM and no apt-get to install it: install chromium and rerun"; exit 1; }
  say "installing Debian's chromium"
  apt_log="$(mktemp)"
  if ! { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
    >"$apt_log" 2>&1; then
    cat "$apt_log" >&2; rm -f "$apt_log"; say "installing chromium failed (apt-get output above)"; exit 1
  fi
  rm -f "$apt_log"
  [ -x "$CHROMIUM" ] || { say "chromium was installed but $CHROMIUM is missing"; exit 1; }
  say "chromium is installed ($("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM"))"
fi

# --- playwright (the Python driver only) --------------------------------------------------
[ -x "$VENV/bin/python" ] || { say "no virtual environment at $VENV: run \`make setup\` first"; exit 1; }
want="$(grep -i '^playwright==' constraints.txt | cut -d= -f3)"
have="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("playwright"))' 2>/dev/null || true)"
if [ -n "$want" ] && [ "$have" = "$want" ]; then
  say "playwright $have is installed in $VENV"
else
  say "installing playwright ${want:-(unpinned)} into $VENV (constraints.txt)"
  "$VENV/bin/pip" install -q -c constraints.txt playwright 2>&1 | { grep -v "is ignored: it is neither" || true; }
  say "playwright $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("playwright"))') is installed"
fi

# --- PostgreSQL (the scale-out test runs a Prefect server on it) ----------------------------
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  say "PostgreSQL is installed ($(ls -d /usr/lib/postgresql/*/ | head -n1))"
else
  say "installing Debian's postgresql (server binaries; the tests start their own cluster)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1 \
    || { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
  say "PostgreSQL is installed ($(ls -d /usr/lib/postgresql/*/ | head -n1))"
fi
