#!/usr/bin/env bash
# Builds the project images for the node tests with `make images` (buildah, no daemon) on the
# Debian base of provision-node.sh, and saves each as an OCI archive the node imports.
# Cached by a hash of the build context, the Dockerfile and the base image: a warm run only
# hashes. The last line on stdout is the directory of the archives; progress goes to stderr.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
NODE_DIR="$(bash "$HERE/provision-node.sh" | tail -n 1)"
IMAGES="$NODE_DIR/images"
BASE_ARCHIVE="$IMAGES/debian-python.tar"
BASE_IMAGE="localhost/debian-python:bookworm"
TARGETS="$(sed -n 's/^IMAGE_TARGETS := //p' "$REPO/Makefile")"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -n 1)"

cd "$REPO"
# Exactly what services/Dockerfile copies (see .dockerignore), plus the recipe itself.
key="$(
  {
    find pyproject.toml README.md services/Dockerfile .dockerignore services/volatility \
      models/volatility_training models/artifacts operator/volatility_operator -type f \
      -not -path '*/__pycache__/*' -not -name '*.py[cod]' -print0 | sort -z | xargs -0 sha256sum
    sha256sum "$BASE_ARCHIVE"
  } | sha256sum | cut -c1-16
)"
OUT="$IMAGES/app-$VERSION-$key"
if [ -f "$OUT/.built" ]; then echo "$OUT"; exit 0; fi
# While iterating on the node tests themselves: reuse the last build even if sources changed.
if [ "${VOLATILITY_REUSE_IMAGES:-0}" = 1 ]; then
  last="$(ls -dt "$IMAGES"/app-"$VERSION"-*/.built 2>/dev/null | head -n 1)"
  if [ -n "$last" ]; then echo "build-images: reusing $(dirname "$last")" >&2; dirname "$last"; exit 0; fi
fi

exec 9>"$IMAGES/.app.lock"
flock 9
if [ -f "$OUT/.built" ]; then echo "$OUT"; exit 0; fi
log() { echo "build-images: $(date -u +%H:%M:%S) $*" >&2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
start=$SECONDS
if ! buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1 ||
  [ "$(cat "$IMAGES/.base-pulled" 2>/dev/null)" != "$(sha256sum "$BASE_ARCHIVE")" ]; then
  log "loading $BASE_IMAGE into buildah"
  buildah rmi -f "$BASE_IMAGE" >/dev/null 2>&1 || true
  buildah pull --quiet "oci-archive:$BASE_ARCHIVE" >&2
  sha256sum "$BASE_ARCHIVE" >"$IMAGES/.base-pulled"
fi
# pip inside the build must trust the same CAs as this machine (a TLS-inspecting proxy adds
# its own): mount the host's bundle and a pip.conf naming it, for the build only.
ca="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
printf '[global]\ncert = /etc/volatility-build-ca.crt\n' >"$work/pip.conf"
flags="-v $ca:/etc/volatility-build-ca.crt:ro -v $work/pip.conf:/etc/pip.conf:ro"
log "make images (buildah, base $BASE_IMAGE)"
make --no-print-directory images CONTAINER_BUILDER=buildah PYTHON_IMAGE="$BASE_IMAGE" \
  IMAGE_BUILD_FLAGS="$flags" >&2
log "images built after $((SECONDS - start))s"

mkdir -p "$OUT.tmp"
for t in $TARGETS; do
  name="localhost/volatility-$t:$VERSION"
  buildah push --quiet "$name" "oci-archive:$OUT.tmp/volatility-$t.tar:$name" >&2
  log "$name:" \
    "$(du -m "$OUT.tmp/volatility-$t.tar" | cut -f1) MB compressed"
done
touch "$OUT.tmp/.built"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
# Keep only this build's archives; buildah's layer cache keeps the rest warm.
find "$IMAGES" -maxdepth 1 -name 'app-*' -not -name "app-$VERSION-$key" -exec rm -rf {} +
log "done after $((SECONDS - start))s"
echo "$OUT"
