#!/usr/bin/env bash
# Provisions a real Kubernetes node for the node tests, from package registries only:
#   - Debian packages: containerd, runc, CNI plugins, iptables, debootstrap, umoci, skopeo, buildah;
#   - kubelet and kube-proxy (the control plane's wrapper-module recipe), crictl, CoreDNS and
#     Traefik (Ingress and Gateway API controller), built from the Go module proxy, and the
#     Gateway API CRDs from their Go module;
#   - the Prometheus Operator, its config reloader and Prometheus (the same wrapper-module
#     recipe), with the CRDs and example RBAC of the operator's module;
#   - OCI archives of the images no registry serves here: the pause image (compiled from the
#     upstream source in the k8s.io/kubernetes module), a Debian bookworm + Python base for
#     services/Dockerfile, a Kafka image (Maven Central jars, Debian's JRE, the launcher
#     scripts of tests/infra/kafka-image), and the monitoring images: the operator, its
#     reloader, Prometheus, and Debian's Alertmanager on Debian's libc.
# Everything is cached under $CACHE, keyed by version; a warm run only checks stamps.
# The last line on stdout is the node dir (bin/ and images/ below it); progress goes to stderr.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.34.10}"
CRICTL_VERSION="${CRICTL_VERSION:-1.34.0}"
COREDNS_VERSION="${COREDNS_VERSION:-1.13.2}"   # 1.13.3 is refused by the module proxy
KAFKA_VERSION="${KAFKA_VERSION:-4.1.2}"
TRAEFIK_VERSION="${TRAEFIK_VERSION:-3.6.25}"    # 3.7.x replaces onto an unpublished module
GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-1.4.0}"  # the version Traefik's go.mod requires
# The newest release the module proxy serves (v0.86.1 fails the checksum database, later ones
# are refused).
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-0.85.0}"
# Debian's Prometheus is built without Kubernetes service discovery, which every configuration
# the operator writes uses: the operator's pods run Prometheus built from its Go module (the
# newest release v0.85.0 lists as compatible).
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-3.5.0}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PAUSE_VERSION="3.10.1"                         # the sandbox image Kubernetes 1.34 expects
CACHE="${VOLATILITY_CACHE:-$HOME/.cache/volatility}"
OUT="$CACHE/node-v$K8S_VERSION"
BIN="$OUT/bin"
IMAGES="$OUT/images"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
PACKAGES="containerd runc containernetworking-plugins iptables conntrack debootstrap umoci skopeo buildah gcc libc6-dev"

log() { echo "provision-node: $(date -u +%H:%M:%S) $*" >&2; }
stamp() { echo "$OUT/.$1-$2"; }
# The Kafka image also depends on its launcher scripts: a change to them rebuilds it.
kafka_key="$KAFKA_VERSION-$(cat "$HERE"/kafka-image/bin/* | sha256sum | cut -c1-12)"
# The monitoring images also depend on their recipe below and on the Debian packages that
# provision-prometheus.sh unpacks.
monitoring_key="$PROMETHEUS_OPERATOR_VERSION-$PROMETHEUS_VERSION-$({ sed -n '/^build_monitoring() {/,/^}/p' "$HERE/provision-node.sh"
  cat "$HERE/provision-prometheus.sh"; } | sha256sum | cut -c1-12)"
have_all() {
  [ -f "$(stamp packages 1)" ] && [ -f "$(stamp kube "$K8S_VERSION")" ] &&
    [ -f "$(stamp crictl "$CRICTL_VERSION")" ] && [ -f "$(stamp coredns "$COREDNS_VERSION")" ] &&
    [ -f "$(stamp pause "$PAUSE_VERSION")" ] && [ -f "$(stamp base "$DEBIAN_SUITE")" ] &&
    [ -f "$(stamp kafka "$kafka_key")" ] && [ -f "$(stamp traefik "$TRAEFIK_VERSION")" ] &&
    [ -f "$(stamp gateway-api "$GATEWAY_API_VERSION")" ] &&
    [ -f "$(stamp monitoring "$monitoring_key")" ]
}
if have_all; then echo "$OUT"; exit 0; fi

[ "$(id -u)" = 0 ] || { echo "provision-node: a node needs root (containerd, kubelet)" >&2; exit 1; }
mkdir -p "$BIN" "$IMAGES" "$CACHE/go"
exec 9>"$OUT/.lock"
flock 9
if have_all; then echo "$OUT"; exit 0; fi

work="$(mktemp -d "$OUT/.work.XXXXXX")"
cleanup() {
  # debootstrap leaves /proc and /sys mounted in its target when it fails half-way.
  grep -o " $work/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

packages() {
  local missing=() p
  for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt: installing ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
  touch "$(stamp packages 1)"
}

go_env() {
  [ -x "$GO" ] || { echo "provision-node: go not found (set GO=/path/to/go)" >&2; exit 1; }
  # The same caches as provision-k8s.sh: the kubelet shares most of its packages with the
  # control plane, so after it this build is mostly warm.
  export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOPATH="$CACHE/go/path"
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -modcacherw -buildvcs=false"
  export GOWORK=off GO111MODULE=on
}

module_dir() {  # module@version: where the module cache holds its unpacked source
  "$GO" mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'
}

wrapper_module() {  # name module version
  # `go install module/cmd@version` is refused when the module's go.mod has replace or exclude
  # directives: a wrapper module (in $work/name, the current directory afterwards) re-creates
  # them, with the module's go.sum (without it the checksum database is asked about modules the
  # proxy cannot vouch for).
  local src
  mkdir "$work/$1" && cd "$work/$1"
  "$GO" mod init "local/$1-build" >/dev/null 2>&1
  src="$(module_dir "$2@$3")"
  sed -n '/^\(replace\|exclude\) (/,/^)/p; /^\(replace\|exclude\) [^(]/p' "$src/go.mod" >>go.mod
  install -m 0644 "$src/go.sum" go.sum
}

build_kube() {
  # kubelet and kube-proxy: the wrapper module of provision-k8s.sh (k/k's ./staging replaces
  # re-pointed at the published staging modules), same version stamping.
  local minor="${K8S_VERSION#1.}"; minor="${minor%%.*}"
  local staging="v0.${K8S_VERSION#1.}"
  local pkgs="k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy"
  mkdir "$work/kube" && cd "$work/kube"
  "$GO" mod init local/node-build >/dev/null 2>&1
  local gomod m n=0
  gomod="$("$GO" mod download -json "k8s.io/kubernetes@v$K8S_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$gomod"); do
    "$GO" mod edit -replace="$m=$m@$staging"
    n=$((n + 1))
  done
  [ "$n" -gt 20 ] || { echo "provision-node: only $n staging replaces found in $gomod" >&2; exit 1; }
  local gd
  gd="$(sed -n 's/^godebug[[:space:]]\{1,\}//p' "$gomod" | head -1)"
  [ -z "$gd" ] || "$GO" mod edit -godebug="$gd"
  log "kube: resolving modules ($n staging replaces)"
  # shellcheck disable=SC2046
  "$GO" get $(for p in $pkgs; do printf '%s@v%s ' "$p" "$K8S_VERSION"; done) >&2
  local ldf="-s -w" kv
  for kv in "gitVersion=v$K8S_VERSION" "gitMajor=1" "gitMinor=$minor" "gitTreeState=clean" \
    "gitCommit=0000000000000000000000000000000000000000" "buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; do
    ldf="$ldf -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
  done
  log "kube: building $pkgs"
  # shellcheck disable=SC2086
  "$GO" build -trimpath -tags selinux,notest -ldflags "$ldf" -o "$work/kube-out/" $pkgs
  mv -f "$work/kube-out/kubelet" "$work/kube-out/kube-proxy" "$BIN/"
  "$BIN/kubelet" --version >&2
  rm -f "$OUT"/.kube-*
  touch "$(stamp kube "$K8S_VERSION")"
}

go_install() {  # name package version
  log "$1: building $2@v$3"
  mkdir -p "$work/$1-out"
  GOBIN="$work/$1-out" "$GO" install -trimpath -ldflags "-s -w" "$2@v$3" >&2
  mv -f "$work/$1-out/$1" "$BIN/$1"
  rm -f "$OUT/.$1-"*
  touch "$(stamp "$1" "$3")"
}

build_traefik() {
  # Traefik's go.mod has replace and exclude directives; its go.sum vouches for some
  # DNS-provider modules the checksum database does not.
  local mod="github.com/traefik/traefik/v3"
  wrapper_module traefik "$mod" "v$TRAEFIK_VERSION"
  log "traefik: resolving $mod@v$TRAEFIK_VERSION"
  "$GO" get "$mod/cmd/traefik@v$TRAEFIK_VERSION" >&2
  log "traefik: building"
  "$GO" build -trimpath -ldflags "-s -w -X $mod/pkg/version.Version=v$TRAEFIK_VERSION" \
    -o "$work/traefik-out/traefik" "$mod/cmd/traefik"
  mv -f "$work/traefik-out/traefik" "$BIN/traefik"
  "$BIN/traefik" version >&2
  rm -f "$OUT"/.traefik-*
  touch "$(stamp traefik "$TRAEFIK_VERSION")"
}

gateway_api_crds() {
  # The standard-channel CRDs ship inside the Go module of the Gateway API.
  local dir
  dir="$(module_dir "sigs.k8s.io/gateway-api@v$GATEWAY_API_VERSION")"
  rm -rf "$OUT/gateway-api-crds"
  mkdir -p "$OUT/gateway-api-crds"
  cp "$dir"/config/crd/standard/*.yaml "$OUT/gateway-api-crds/"
  chmod 0644 "$OUT"/gateway-api-crds/*.yaml
  rm -f "$OUT"/.gateway-api-*
  touch "$(stamp gateway-api "$GATEWAY_API_VERSION")"
}

# An OCI layout directory holding one image built from a root filesystem tree, saved as an
# oci-archive named $name (what `ctr images import` and `buildah pull` read).
rootfs_image() {  # rootfs name archive [umoci config args...]
  local rootfs="$1" name="$2" archive="$3"; shift 3
  local layout="$work/layout-$(basename "$archive" .tar)"
  umoci init --layout "$layout"
  umoci new --image "$layout:img"
  tar -C "$rootfs" --numeric-owner --xattrs -cf "$work/layer.tar" .
  umoci raw add-layer --image "$layout:img" "$work/layer.tar"
  rm -f "$work/layer.tar"
  umoci config --image "$layout:img" --os linux --architecture amd64 "$@"
  rm -f "$archive.tmp"
  skopeo copy --quiet "oci:$layout:img" "oci-archive:$archive.tmp:$name" >&2
  mv -f "$archive.tmp" "$archive"
  rm -rf "$layout"
}

build_pause() {
  # No registry serves registry.k8s.io here: compile the upstream pause.c from the module zip.
  local src
  src="$(module_dir "k8s.io/kubernetes@v$K8S_VERSION")/build/pause/linux/pause.c"
  mkdir -p "$work/pause"
  gcc -Os -static -s -DVERSION="v$PAUSE_VERSION" -o "$work/pause/pause" "$src"
  rootfs_image "$work/pause" "localhost/pause:$PAUSE_VERSION" "$IMAGES/pause.tar" \
    --config.entrypoint /pause --config.user 65535:65535
  rm -f "$OUT"/.pause-*
  touch "$(stamp pause "$PAUSE_VERSION")"
}

debootstrap_rootfs() {  # dir packages
  mkdir -p "$CACHE/debs"
  debootstrap --variant=minbase --cache-dir="$CACHE/debs" --include="$2" \
    "$DEBIAN_SUITE" "$1" "$DEBIAN_MIRROR" >&2
  chroot "$1" apt-get clean
  rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/debconf/*-old "$1"/var/log/*.log \
    "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/*
}

build_base() {
  # The base services/Dockerfile builds on here (PYTHON_IMAGE): Debian + Python 3.11, with
  # python3-venv for ensurepip and python-is-python3 for the `python` the Dockerfile calls.
  log "base: debootstrap $DEBIAN_SUITE + python3"
  debootstrap_rootfs "$work/base" python3,python3-venv,python-is-python3,ca-certificates
  rootfs_image "$work/base" "localhost/debian-python:$DEBIAN_SUITE" "$IMAGES/debian-python.tar" \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.env LANG=C.UTF-8 --config.cmd python3
  rm -rf "$work/base"
  rm -f "$OUT"/.base-*
  touch "$(stamp base "$DEBIAN_SUITE")"
}

build_kafka() {
  # Where the official apache/kafka image cannot be pulled: the same layout (/opt/kafka/bin,
  # /opt/kafka/libs) from Maven Central jars and Debian's JRE, so the chart's command runs as is.
  local kafka_home
  kafka_home="$(bash "$HERE/provision-kafka.sh" | tail -n 1)"
  log "kafka: debootstrap $DEBIAN_SUITE + JRE"
  debootstrap_rootfs "$work/kafka" openjdk-17-jre-headless
  mkdir -p "$work/kafka/opt/kafka/bin"
  cp -r "$kafka_home/libs" "$work/kafka/opt/kafka/libs"
  install -m 0755 "$HERE"/kafka-image/bin/* "$work/kafka/opt/kafka/bin/"
  rootfs_image "$work/kafka" "localhost/volatility-kafka:$KAFKA_VERSION" "$IMAGES/kafka.tar" \
    --config.env PATH=/opt/kafka/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.env LANG=C.UTF-8 --config.user 1000:1000 --config.workingdir /opt/kafka \
    --config.cmd /opt/kafka/bin/kafka-server-start.sh
  rm -rf "$work/kafka"
  rm -f "$OUT"/.kafka-*
  touch "$(stamp kafka "$kafka_key")"
}

build_monitoring() {
  # The Prometheus Operator's go.mod replaces ./pkg/apis/monitoring and ./pkg/client, so
  # `go install ...@v` is refused: a wrapper module points them at the published modules of the
  # same tag, with the operator's go.sum.
  local mod="github.com/prometheus-operator/prometheus-operator" v="v$PROMETHEUS_OPERATOR_VERSION"
  local dir sub
  mkdir "$work/po" && cd "$work/po"
  "$GO" mod init local/prometheus-operator-build >/dev/null 2>&1
  for sub in pkg/apis/monitoring pkg/client; do "$GO" mod edit -replace="$mod/$sub=$mod/$sub@$v"; done
  dir="$(module_dir "$mod@$v")"
  install -m 0644 "$dir/go.sum" go.sum
  log "prometheus-operator: resolving $mod@$v"
  "$GO" get "$mod/cmd/operator@$v" "$mod/cmd/prometheus-config-reloader@$v" >&2
  log "prometheus-operator: building the operator and its config reloader"
  "$GO" build -trimpath -ldflags "-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_OPERATOR_VERSION" \
    -o "$work/po-out/" "$mod/cmd/operator" "$mod/cmd/prometheus-config-reloader"
  # Static binaries: each image holds its binary and nothing else.
  local b
  for b in operator prometheus-config-reloader; do
    mkdir -p "$work/root-$b/bin" "$work/root-$b/tmp" && chmod 1777 "$work/root-$b/tmp"
    install -m 0755 "$work/po-out/$b" "$work/root-$b/bin/$b"
  done
  rootfs_image "$work/root-operator" "localhost/prometheus-operator:$v" \
    "$IMAGES/prometheus-operator.tar" --config.entrypoint /bin/operator --config.user 65534:65534
  rootfs_image "$work/root-prometheus-config-reloader" "localhost/prometheus-config-reloader:$v" \
    "$IMAGES/prometheus-config-reloader.tar" \
    --config.entrypoint /bin/prometheus-config-reloader --config.user 65534:65534
  # Prometheus: its go.mod has a replace directive, so a wrapper module again, with its go.sum.
  # Built without the `builtinassets` tag: the HTTP API, not the web UI.
  local pmod="github.com/prometheus/prometheus" pv="$PROMETHEUS_VERSION" ptag
  local major="${pv%%.*}" rest="${pv#*.}"
  ptag="v0.$((major * 100 + ${rest%%.*})).${rest#*.}"   # 3.5.0 is tagged v0.305.0
  wrapper_module prometheus "$pmod" "$ptag"
  log "prometheus: resolving $pmod@$ptag"
  "$GO" get "$pmod/cmd/prometheus@$ptag" >&2
  log "prometheus: building"
  "$GO" build -trimpath -ldflags "-s -w -X github.com/prometheus/common/version.Version=$pv" \
    -o "$work/prom-out/prometheus" "$pmod/cmd/prometheus"
  mkdir -p "$work/root-prometheus/bin" "$work/root-prometheus/tmp"
  chmod 1777 "$work/root-prometheus/tmp"
  install -m 0755 "$work/prom-out/prometheus" "$work/root-prometheus/bin/prometheus"
  rootfs_image "$work/root-prometheus" "localhost/prometheus:v$pv" "$IMAGES/prometheus.tar" \
    --config.entrypoint /bin/prometheus --config.user 65534:65534
  # Debian's Alertmanager links only libc: Debian's libc6 beneath it.
  local prom av
  prom="$(bash "$HERE/provision-prometheus.sh" | tail -n 1)"
  av="$("$prom/alertmanager" --version 2>&1 | sed -n 's/^alertmanager, version \([0-9.]*\).*/\1/p')"
  mkdir -m 0755 "$work/debs" && chmod 0755 "$work"  # apt downloads as its own user
  (cd "$work/debs" && apt-get download libc6 >&2)
  mkdir -p "$work/root-alertmanager/bin" "$work/root-alertmanager/tmp"
  chmod 1777 "$work/root-alertmanager/tmp"
  dpkg-deb -x "$work"/debs/libc6_*.deb "$work/root-alertmanager"
  rm -rf "$work/root-alertmanager/usr/share" "$work/root-alertmanager/usr/lib/x86_64-linux-gnu/gconv"
  install -m 0755 "$prom/alertmanager" "$work/root-alertmanager/bin/alertmanager"
  # Debian's Alertmanager reads its notification templates from this fixed path.
  install -D -m 0644 -t "$work/root-alertmanager/usr/share/prometheus/alertmanager" \
    "$prom"/../templates/*.tmpl
  rootfs_image "$work/root-alertmanager" "localhost/alertmanager:v$av" "$IMAGES/alertmanager.tar" \
    --config.entrypoint /bin/alertmanager --config.user 65534:65534
  # The CRDs, the operator's and Prometheus' RBAC as the module ships them, and the images.
  rm -rf "$OUT/prometheus-operator"
  mkdir -p "$OUT/prometheus-operator"
  cp -r "$dir/example/prometheus-operator-crd" "$OUT/prometheus-operator/crds"
  cp -r "$dir/example/rbac/prometheus-operator" "$OUT/prometheus-operator/rbac"
  cp -r "$dir/example/rbac/prometheus" "$OUT/prometheus-operator/prometheus-rbac"
  chmod -R u+w,a+rX "$OUT/prometheus-operator"
  python3 -c 'import json,sys; print(json.dumps(dict(zip(
    ["operator", "reloader", "prometheus", "alertmanager"], sys.argv[1:]))))' \
    "localhost/prometheus-operator:$v" "localhost/prometheus-config-reloader:$v" \
    "localhost/prometheus:v$pv" "localhost/alertmanager:v$av" >"$OUT/prometheus-operator/images.json"
  rm -f "$OUT"/.monitoring-*
  touch "$(stamp monitoring "$monitoring_key")"
}

# Optional arguments pick parts (`packages`, `images`, `binaries`); the default is all of them.
parts=" ${*:-packages images binaries} "
want() { [[ "$parts" == *" $1 "* ]]; }
start=$SECONDS
[ -f "$(stamp packages 1)" ] || packages
log "packages done after $((SECONDS - start))s"
go_env
if want images; then
  [ -f "$(stamp pause "$PAUSE_VERSION")" ] || (build_pause)
  [ -f "$(stamp base "$DEBIAN_SUITE")" ] || (build_base)
  log "base image done after $((SECONDS - start))s"
  [ -f "$(stamp kafka "$kafka_key")" ] || (build_kafka)
  log "kafka image done after $((SECONDS - start))s"
  [ -f "$(stamp monitoring "$monitoring_key")" ] || (build_monitoring)
  log "monitoring images done after $((SECONDS - start))s"
fi
if want binaries; then
  [ -f "$(stamp crictl "$CRICTL_VERSION")" ] ||
    (go_install crictl sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_VERSION")
  [ -f "$(stamp kube "$K8S_VERSION")" ] || (build_kube)
  log "kubelet, kube-proxy done after $((SECONDS - start))s"
  [ -f "$(stamp coredns "$COREDNS_VERSION")" ] ||
    (go_install coredns github.com/coredns/coredns "$COREDNS_VERSION")
  log "coredns done after $((SECONDS - start))s"
  [ -f "$(stamp gateway-api "$GATEWAY_API_VERSION")" ] || (gateway_api_crds)
  [ -f "$(stamp traefik "$TRAEFIK_VERSION")" ] || (build_traefik)
fi
log "done after $((SECONDS - start))s"
echo "$OUT"
