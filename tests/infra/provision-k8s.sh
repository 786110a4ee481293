#!/usr/bin/env bash
# Builds the Kubernetes control plane used by the cluster tests from the Go module proxy:
# kube-apiserver, kube-controller-manager, kube-scheduler (stamped with their release version),
# etcd and kwok. Binaries land in $CACHE/k8s-v<version>/bin; the Go module and build caches live
# in $CACHE/go so that a rebuild after a version bump reuses what it can.
# Idempotent: when every binary is present it prints the bin dir at once.
# The last line on stdout is always the bin dir; progress goes to stderr.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.34.10}"     # tag of k8s.io/kubernetes, without "v"
ETCD_VERSION="${ETCD_VERSION:-3.6.4}"     # the etcd release Kubernetes 1.34 is tested with
KWOK_VERSION="${KWOK_VERSION:-0.7.0}"
CACHE="${VOLATILITY_CACHE:-$HOME/.cache/volatility}"
OUT="$CACHE/k8s-v$K8S_VERSION"
BIN="$OUT/bin"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

# One stamp per component: a version bump of etcd or kwok rebuilds only that binary.
stamp() { echo "$BIN/.$1-v$2"; }
have_all() {
  [ -f "$(stamp kube "$K8S_VERSION")" ] && [ -f "$(stamp etcd "$ETCD_VERSION")" ] &&
    [ -f "$(stamp kwok "$KWOK_VERSION")" ]
}
if have_all; then echo "$BIN"; exit 0; fi

mkdir -p "$BIN" "$CACHE/go"
# Two concurrent runs (a developer shell and a test session) must not build over each other.
exec 9>"$OUT/.lock"
flock 9
if have_all; then echo "$BIN"; exit 0; fi

[ -x "$GO" ] || { echo "provision-k8s: go not found (set GO=/path/to/go)" >&2; exit 1; }
export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOPATH="$CACHE/go/path"
# GOTOOLCHAIN=local: never fetch another toolchain; -modcacherw keeps the cache removable by rm -rf.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -modcacherw -buildvcs=false"
export GOWORK=off GO111MODULE=on

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
log() { echo "provision-k8s: $(date -u +%H:%M:%S) $*" >&2; }

build_kube() {
  local minor="${K8S_VERSION#1.}"; minor="${minor%%.*}"
  local staging="v0.${K8S_VERSION#1.}"   # staging modules are tagged v0.<minor>.<patch>
  local pkgs="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler"
  mkdir "$work/kube" && cd "$work/kube"
  "$GO" mod init local/kube-build >/dev/null 2>&1
  # `go install k8s.io/kubernetes/...@v` is refused because k/k's go.mod has replace directives
  # (to ./staging); a wrapper module re-creates them against the published staging modules.
  local gomod
  gomod="$("$GO" mod download -json "k8s.io/kubernetes@v$K8S_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  local m n=0
  for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$gomod"); do
    "$GO" mod edit -replace="$m=$m@$staging"
    n=$((n + 1))
  done
  [ "$n" -gt 20 ] || { echo "provision-k8s: only $n staging replaces found in $gomod" >&2; exit 1; }
  local gd
  gd="$(sed -n 's/^godebug[[:space:]]\{1,\}//p' "$gomod" | head -1)"
  [ -z "$gd" ] || "$GO" mod edit -godebug="$gd"
  log "kube: resolving modules ($n staging replaces)"
  # shellcheck disable=SC2046
  "$GO" get $(for p in $pkgs; do printf '%s@v%s ' "$p" "$K8S_VERSION"; done) >&2
  # Same keys as the release build sets; without them /version says v0.0.0 and Helm rejects
  # charts that declare kubeVersion.
  local ldf="-s -w" kv
  for kv in "gitVersion=v$K8S_VERSION" "gitMajor=1" "gitMinor=$minor" "gitTreeState=clean" \
    "gitCommit=0000000000000000000000000000000000000000" "buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; do
    ldf="$ldf -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
  done
  log "kube: building $pkgs"
  # shellcheck disable=SC2086
  "$GO" build -trimpath -tags selinux,notest -ldflags "$ldf" -o "$work/kube-out/" $pkgs
  local b
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    mv -f "$work/kube-out/$b" "$BIN/$b"
  done
  "$BIN/kube-apiserver" --version >&2
  touch "$(stamp kube "$K8S_VERSION")"
}

build_etcd() {
  # go.etcd.io/etcd/server/v3 has replace directives too, so it also needs a wrapper module;
  # the published api/client/pkg modules of the same tag satisfy it.
  mkdir "$work/etcd" && cd "$work/etcd"
  "$GO" mod init local/etcd-build >/dev/null 2>&1
  log "etcd: resolving go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  "$GO" get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >&2
  log "etcd: building"
  "$GO" build -trimpath -ldflags "-s -w" -o "$work/etcd-out/etcd" go.etcd.io/etcd/server/v3
  mv -f "$work/etcd-out/etcd" "$BIN/etcd"
  "$BIN/etcd" --version >&2
  rm -f "$BIN"/.etcd-v*
  touch "$(stamp etcd "$ETCD_VERSION")"
}

build_kwok() {
  log "kwok: building sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  mkdir -p "$work/kwok-out"
  GOBIN="$work/kwok-out" "$GO" install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  mv -f "$work/kwok-out/kwok" "$BIN/kwok"
  "$BIN/kwok" --version >&2 || true
  rm -f "$BIN"/.kwok-v*
  touch "$(stamp kwok "$KWOK_VERSION")"
}

start=$SECONDS
# Smallest first: a failure in etcd or kwok shows up before the long Kubernetes build.
[ -f "$(stamp etcd "$ETCD_VERSION")" ] || (build_etcd)
log "etcd done after $((SECONDS - start))s"
[ -f "$(stamp kwok "$KWOK_VERSION")" ] || (build_kwok)
log "kwok done after $((SECONDS - start))s"
[ -f "$(stamp kube "$K8S_VERSION")" ] || (build_kube)
log "all done after $((SECONDS - start))s"
echo "$BIN"
