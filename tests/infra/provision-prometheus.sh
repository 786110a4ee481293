#!/usr/bin/env bash
# Provisions Prometheus from Debian's `prometheus` package into the cache and prints the
# directory holding `prometheus` and `promtool`. The package is downloaded and unpacked, not
# installed: no service is started or enabled on the machine. Idempotent: a second run is
# instant.
set -euo pipefail
CACHE="${VOLATILITY_CACHE:-$HOME/.cache/volatility}"
OUT="$CACHE/prometheus-deb"
if [ -x "$OUT/bin/prometheus" ] && [ -x "$OUT/bin/promtool" ]; then echo "$OUT/bin"; exit 0; fi
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"  # apt downloads as its own unprivileged user
if ! (cd "$tmp" && apt-get download prometheus >&2); then
  apt-get update >&2
  (cd "$tmp" && apt-get download prometheus >&2)
fi
dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
mkdir -p "$OUT.tmp/bin"
for b in prometheus promtool; do
  install -m 0755 "$tmp/x/usr/bin/$b" "$OUT.tmp/bin/$b"
done
"$OUT.tmp/bin/prometheus" --version >&2
rm -rf "$OUT"; mv "$OUT.tmp" "$OUT"
echo "$OUT/bin"
