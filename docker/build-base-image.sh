#!/usr/bin/env bash
# Build a minimal local base image with Python 3.11 from Debian bookworm packages,
# for machines that cannot pull from a container registry (this project's dev
# machines and CI). The image is made with mmdebstrap (root filesystem from the
# Debian mirror) and `docker import`; no registry is contacted.
#
# Usage: docker/build-base-image.sh [--force] [--tag TAG]
#   --force     rebuild even if the image already exists
#   --tag TAG   image tag (default: $REPLOG_BASE_IMAGE or replog-base:bookworm)
#
# Environment (all optional):
#   REPLOG_BASE_IMAGE   default tag (replog-base:bookworm)
#   DEBIAN_MIRROR       Debian mirror (default: the one apt on this host uses,
#                       else http://deb.debian.org/debian)
#   DEBIAN_SECURITY     security mirror (default: derived like DEBIAN_MIRROR)
#   DEBIAN_SUITE        suite (default: bookworm; Python 3.11 is the floor)
#
# Idempotent: exits at once when the tag exists. Installs mmdebstrap with apt
# when it is missing. Prints the image size at the end.
set -euo pipefail

tag="${REPLOG_BASE_IMAGE:-replog-base:bookworm}"
force=0
while [ $# -gt 0 ]; do
    case "$1" in
        --force) force=1 ;;
        --tag) shift; tag="${1:?--tag needs a value}" ;;
        --tag=*) tag="${1#--tag=}" ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "build-base-image: unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "build-base-image: $*" >&2; }

print_size() {
    local bytes
    bytes="$(docker image inspect --format '{{.Size}}' "$tag")"
    log "image $tag size: $((bytes / 1000 / 1000)) MB ($bytes bytes)"
}

command -v docker >/dev/null 2>&1 || { log "docker CLI not found"; exit 1; }
docker info >/dev/null 2>&1 || { log "docker engine not reachable (docker info failed)"; exit 1; }

# One build at a time on this machine (parallel test sessions would race otherwise).
if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/replog-build-base-image.lock"
    flock 9
fi

old_id="$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
if [ "$force" = 0 ] && [ -n "$old_id" ]; then
    log "image $tag already exists (use --force to rebuild)"
    print_size
    exit 0
fi

suite="${DEBIAN_SUITE:-bookworm}"

# Use the same Debian mirror apt on this host is configured with (reachable here).
host_mirror() {
    # $1: "security" or "main"
    local files uri
    files="$(ls /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
    [ -n "$files" ] || return 0
    # shellcheck disable=SC2086
    uri="$(grep -hE '^[[:space:]]*(deb[[:space:]]|URIs:)' $files \
        | grep -oE 'https?://[^[:space:]]+' | grep -E '/debian(-security)?/?$' \
        | if [ "$1" = security ]; then grep -E 'debian-security/?$'; else grep -vE 'debian-security/?$'; fi \
        | head -n1 || true)"
    echo "${uri%/}"
}
mirror="${DEBIAN_MIRROR:-$(host_mirror main)}"
mirror="${mirror:-http://deb.debian.org/debian}"
security="${DEBIAN_SECURITY:-$(host_mirror security)}"
security="${security:-${mirror%/debian}/debian-security}"

if ! command -v mmdebstrap >/dev/null 2>&1; then
    log "installing mmdebstrap with apt"
    if [ "$(id -u)" != 0 ]; then log "mmdebstrap is missing and this is not root: install it first"; exit 1; fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi

workdir="$(mktemp -d "${TMPDIR:-/tmp}/replog-base.XXXXXX")"
trap 'rm -rf "$workdir"' EXIT
tarball="$workdir/rootfs.tar"

log "building $tag from $suite ($mirror, $security)"
start=$SECONDS
# minbase: Essential + apt. python3-venv brings ensurepip (pip/setuptools wheels)
# so the image can make a venv (Debian's python3 is "externally managed", PEP 668).
# The merged-usr hook sets up merged /usr itself, so the usrmerge package (and
# the ~50 MB of perl it pulls in) is not installed.
# Docs, man pages and locales are never unpacked; apt lists and caches are dropped.
# shellcheck disable=SC2016  # the hooks' "$1" (the chroot) is expanded by mmdebstrap
mmdebstrap \
    --variant=minbase \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include=python3,python3-venv,ca-certificates \
    --aptopt='Acquire::Languages "none"' \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb "$1"/var/log/*.log "$1"/var/log/apt/*' \
    --customize-hook='chroot "$1" python3 -c "import sys, venv, ensurepip, ssl; assert sys.version_info >= (3, 11), sys.version"' \
    --format=tar \
    "$suite" "$tarball" \
    "deb $mirror $suite main" \
    "deb $mirror $suite-updates main" \
    "deb $security $suite-security main"

docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    --message "replog base: Debian $suite minbase + python3 (mmdebstrap)" \
    "$tarball" "$tag" >/dev/null

log "built $tag in $((SECONDS - start)) s"
new_id="$(docker image inspect --format '{{.Id}}' "$tag")"
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    # The previous build is now untagged; drop it unless something still uses it.
    docker rmi "$old_id" >/dev/null 2>&1 || log "previous image ${old_id:7:12} kept (still in use)"
fi
docker run --rm "$tag" python3 -c 'import sys; print("build-base-image: python", sys.version.split()[0])' >&2
print_size
