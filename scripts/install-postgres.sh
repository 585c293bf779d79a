#!/usr/bin/env bash
# Make sure a PostgreSQL server binary is on this machine: Debian's package when it is missing.
# The tests start their own throwaway cluster from it (devstack/postgres.py), so nothing is
# started here. Skipped when PDP_TEST_POSTGRES names a server to use instead.
set -euo pipefail
[[ -n "${PDP_TEST_POSTGRES:-}" ]] && exit 0
if compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-postgres: PostgreSQL is not installed; run as root or: sudo apt-get install postgresql" >&2
  exit 1
fi
echo "install-postgres: installing Debian's postgresql package" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq postgresql >/dev/null
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null
