#!/usr/bin/env bash
# The live page's browser test needs headless Chromium and its WebDriver from Debian's packages
# (`chromium`, `chromium-driver`). Installs them with apt-get when either is missing, without
# questions; does nothing when both are there. Needs root (or sudo without a password).
set -euo pipefail

if command -v chromedriver >/dev/null 2>&1 \
    && { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo -n)
else
  echo "install-browser: not root and no sudo: cannot install chromium and chromium-driver" >&2
  exit 1
fi

echo "install-browser: installing chromium and chromium-driver with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
chromium --version >&2
