#!/bin/sh
# Make the cluster secret that compose.yaml gives every node (the Docker secret `cluster_secret`,
# read by the node from /run/secrets/cluster_secret), unless it exists already.
#
#   docker/make-secret.sh            # writes docker/secrets/cluster-secret if missing
#   docker/make-secret.sh --force    # a new secret (restart every node afterwards)
#
# The directory is the host user's alone (0700); the file itself is 0644 because compose (without
# swarm) bind-mounts it as it is and the node runs as uid 10001 in the container, which must read
# it. Keep your own secret elsewhere with CLUSTER_SECRET_FILE=/path docker compose up.
set -eu

force=no
case "${1:-}" in
    --force) force=yes ;;
    "") ;;
    *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

dir="$(cd "$(dirname "$0")" && pwd)/secrets"
file="$dir/cluster-secret"
umask 077
mkdir -p "$dir"
chmod 700 "$dir"
[ -f "$dir/.gitignore" ] || printf '*\n' > "$dir/.gitignore"   # never committed

if [ -s "$file" ] && [ "$force" = no ]; then
    echo "replog: $file exists; kept (--force makes a new one)"
    exit 0
fi
secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$secret" > "$file.tmp"
chmod 644 "$file.tmp"
mv "$file.tmp" "$file"
echo "replog: wrote a new cluster secret to $file"
