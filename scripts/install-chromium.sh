#!/usr/bin/env bash
# Make sure Debian's chromium and chromedriver are on this machine: the console's browser tests
# (tests/console) drive them headless. Nothing is started here.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-chromium: chromium is not installed; run as root or: sudo apt-get install chromium chromium-driver" >&2
  exit 1
fi
echo "install-chromium: installing Debian's chromium and chromium-driver packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium chromium-driver >/dev/null
command -v chromium >/dev/null && command -v chromedriver >/dev/null
