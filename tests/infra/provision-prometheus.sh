#!/usr/bin/env bash
# Provisions Prometheus and Alertmanager from Debian's `prometheus` and `prometheus-alertmanager`
# packages into the cache and prints the directory holding `prometheus`, `promtool` and
# `alertmanager`. The packages are downloaded and unpacked, not installed: no service is started
# or enabled on the machine. Debian's Alertmanager reads its notification templates from a fixed
# path, /usr/share/prometheus/alertmanager: those data files alone are placed there, as the
# package would place them. Idempotent: a second run is instant.
set -euo pipefail
CACHE="${VOLATILITY_CACHE:-$HOME/.cache/volatility}"
OUT="$CACHE/prometheus-deb"
TEMPLATES=/usr/share/prometheus/alertmanager
BINS=(prometheus promtool alertmanager)
ready=1
for b in "${BINS[@]}"; do [ -x "$OUT/bin/$b" ] || ready=0; done
[ -f "$OUT/templates/default.tmpl" ] || ready=0
if [ "$ready" = 1 ]; then
  [ -f "$TEMPLATES/default.tmpl" ] || install -D -m 0644 -t "$TEMPLATES" "$OUT"/templates/*.tmpl
  echo "$OUT/bin"; exit 0
fi
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"  # apt downloads as its own unprivileged user
if ! (cd "$tmp" && apt-get download prometheus prometheus-alertmanager >&2); then
  apt-get update >&2
  (cd "$tmp" && apt-get download prometheus prometheus-alertmanager >&2)
fi
for deb in "$tmp"/prometheus_*.deb "$tmp"/prometheus-alertmanager_*.deb; do
  dpkg-deb -x "$deb" "$tmp/x"
done
mkdir -p "$OUT.tmp/bin"
for b in prometheus promtool; do
  install -m 0755 "$tmp/x/usr/bin/$b" "$OUT.tmp/bin/$b"
done
install -m 0755 "$tmp/x/usr/bin/prometheus-alertmanager" "$OUT.tmp/bin/alertmanager"
install -D -m 0644 -t "$OUT.tmp/templates" "$tmp/x$TEMPLATES"/*.tmpl
"$OUT.tmp/bin/prometheus" --version >&2
"$OUT.tmp/bin/alertmanager" --version >&2
rm -rf "$OUT"; mv "$OUT.tmp" "$OUT"
[ -f "$TEMPLATES/default.tmpl" ] || install -D -m 0644 -t "$TEMPLATES" "$OUT"/templates/*.tmpl
echo "$OUT/bin"
