#!/usr/bin/env bash
# Set up what the given command needs on a Debian/Ubuntu machine (as root), then run it with the
# project's tools on PATH:
#   ./bootstrap.sh invoke e2e     replay the guide on the local lab (or --provider libvirt|virtualbox:
#                                 only that provider's tools; default cluster.yaml / CALICOLAB_PROVIDER)
#   ./bootstrap.sh invoke test    the project's own tests: the lab, the libvirt VM lane and the test tools
# Idempotent: a second run only checks. `invoke setup --dry-run` prints the plan.
set -euo pipefail
cd "$(dirname "$0")"

apt_install() {
  command -v apt-get >/dev/null || { echo "error: $* missing and no apt-get here: install them" >&2; exit 2; }
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  apt_install python3 python3-venv python3-pip
  PY=python3
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv 2>/dev/null || { apt_install python3-venv; rm -rf .venv; "$PY" -m venv .venv; }
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -e "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e . 
  touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
# `invoke test` needs everything it runs; another command, its --provider's tools.
setup_args=()
if [ "${1:-}" = invoke ] && [ "${2:-}" = test ]; then
  setup_args=(--for tests)
else
  prev=""
  for arg in "$@"; do
    case "$arg" in --provider=*) setup_args=(--provider "${arg#--provider=}") ;; esac
    [ "$prev" = --provider ] && setup_args=(--provider "$arg")
    prev=$arg
  done
fi
invoke setup ${setup_args[@]+"${setup_args[@]}"}
[ "$#" -gt 0 ] || exit 0
exec "$@"
