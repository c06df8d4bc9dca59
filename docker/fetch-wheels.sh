#!/usr/bin/env bash
# Download the runtime dependencies (requirements.txt) and the package's build
# backend (pyproject.toml [build-system].requires) as wheels into docker/wheels/,
# so `docker build` can install them with `pip install --no-index --find-links`
# on machines where the build cannot reach PyPI. With docker/wheels/ empty the
# Dockerfile installs from PyPI instead.
#
# Usage: docker/fetch-wheels.sh [--force]
#   Skips the download when docker/wheels/ already matches requirements.txt and the
#   build backend (a stamp file records their hash); --force downloads anyway.
# Environment (all optional):
#   PYTHON                 interpreter whose pip downloads (default: .venv/bin/python, else python3)
#   WHEELS_PYTHON_VERSION  Python version of the image (default: 3.11)
#   WHEELS_PLATFORM        platform tag of the image (default: manylinux2014_<host arch>)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/docker/wheels"
req="$root/requirements.txt"
log() { echo "fetch-wheels: $*" >&2; }

force=0
case "${1:-}" in
    --force) force=1 ;;
    "") ;;
    *) log "unknown argument: $1"; exit 2 ;;
esac
[ -f "$req" ] || { log "missing $req"; exit 1; }
python="${PYTHON:-}"
if [ -z "$python" ]; then
    if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python=python3; fi
fi
pyver="${WHEELS_PYTHON_VERSION:-3.11}"
platform="${WHEELS_PLATFORM:-manylinux2014_$(uname -m)}"

# Build requirements of the replog package itself (it is built inside the image).
build_reqs="$("$python" - "$root/pyproject.toml" <<'PY'
import sys, tomllib
try:
    with open(sys.argv[1], "rb") as f:
        reqs = tomllib.load(f).get("build-system", {}).get("requires")
except FileNotFoundError:
    reqs = None
print("\n".join(reqs if reqs is not None else ["setuptools>=40.8.0"]))
PY
)"

stamp_value="$( { cat "$req"; printf '%s\n' "$build_reqs" "$pyver" "$platform"; } | sha256sum | cut -d' ' -f1)"
if [ "$force" = 0 ] && [ "$(cat "$dest/.stamp" 2>/dev/null || true)" = "$stamp_value" ] \
    && ls "$dest"/*.whl >/dev/null 2>&1; then
    log "docker/wheels is up to date (use --force to download again)"
    exit 0
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/replog-wheels.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' "$build_reqs" >"$tmp/build-requirements.txt"

# Wheels only, for the image's interpreter and platform (not the host's).
# Pure-Python wheels (py3-none-any) are always accepted.
common=(download --disable-pip-version-check --quiet --dest "$tmp/wheels"
        --only-binary=:all: --python-version "$pyver" --implementation cp
        --platform "$platform" --platform "manylinux_2_17_$(uname -m)" --platform "linux_$(uname -m)")
log "downloading $(grep -cvE '^[[:space:]]*(#|$)' "$req") requirements (+ build backend) for Python $pyver"
"$python" -m pip "${common[@]}" -r "$req"
"$python" -m pip "${common[@]}" -r "$tmp/build-requirements.txt"

# Replace the old contents (stale versions).
mkdir -p "$dest"
find "$dest" -maxdepth 1 -type f \( -name '*.whl' -o -name '*.tar.gz' -o -name '*.zip' \) -delete
mv "$tmp"/wheels/* "$dest"/
echo "$stamp_value" >"$dest/.stamp"
log "$(find "$dest" -maxdepth 1 -name '*.whl' | wc -l) wheels in ${dest#"$root"/}:"
find "$dest" -maxdepth 1 -name '*.whl' -printf '  %f\n' | sort >&2
