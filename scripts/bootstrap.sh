#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine: system packages (as root),
# a virtualenv with the package and its test tools, and the npm packages of the local OIDC provider.
# Idempotent: each step is skipped when what it installs is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v h2load >/dev/null 2>&1 || need_apt+=(nghttp2-client)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)  # promtool: tests/manifests/test_manifests_monitoring.py
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: apt-get install ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: missing system packages (${need_apt[*]}); run as root or install them" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e '.[test]'
  # xds-protos ships an old copy of the opentelemetry-proto files; whichever wheel pip writes last
  # wins, and the old copy breaks the OTLP exporter. Put the real package's files back.
  "$VENV/bin/pip" install -q --force-reinstall --no-deps opentelemetry-proto
  touch "$stamp"
fi

for dir in demo/provider; do
  if [ -f "$dir/package.json" ] && { [ ! -d "$dir/node_modules" ] || [ "$dir/package.json" -nt "$dir/node_modules" ]; }; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error && touch node_modules)
  fi
done
