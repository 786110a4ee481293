"""A real Kubernetes node on this machine, joined to a ControlPlane: every pod really runs.

containerd and runc (Debian), the CNI bridge/host-local/portmap plugins (Debian), kubelet and
kube-proxy (built from the Go module proxy like the control plane) and CoreDNS (Go module
proxy), all provisioned by tests/infra/provision-node.sh. Images come from OCI archives built
here without a registry (tests/infra/build-images.sh); nothing is pulled.

Host changes are few, named and undone: one bridge, one iptables guard, kube-proxy's chains,
cgroups under one root, the sysctls the kubelet and the bridge set (restored), and one state
directory. Everything lives at fixed names so that a run killed half-way is found and cleared
by the next one before it starts (`clear_leftovers`). Pods cannot send traffic off the machine:
a FORWARD rule drops anything from the pod network that would leave through another interface,
and the cluster DNS answers NXDOMAIN outside the cluster domain.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from tests.infra.controlplane import (
    ControlPlane,
    _die_with_parent,
    _openssl,
)
from tests.infra.ports import free_port

NODE_NAME = "volatility-node"
STATE_DIR = Path("/var/lib/volatility-node")
LOCK = Path("/run/volatility-node.lock")
LAST_LOGS = Path("/var/log/volatility-node")  # the logs of the last node, kept after teardown
BRIDGE = "volnode0"
POD_SUBNET = "10.245.0.0/24"  # disjoint from the control plane's Service range
NODE_IP = "10.245.0.1"  # the bridge's address: pods' gateway, the kubelet's and DNS's address
CNI_NETWORK = "volatility-node"
CGROUP_ROOT = "volatility-node"  # every pod cgroup lives below /sys/fs/cgroup/<ctrl>/<this>
PAUSE_IMAGE = "localhost/pause:3.10.1"
STORAGE_CLASS = "volatility-local"
GATEWAY_CLASS = "traefik"
PROVISIONER = "volatility.dev/hostpath"
CGROUPS = Path("/sys/fs/cgroup")
GUARD = ["FORWARD", "-s", POD_SUBNET, "!", "-o", BRIDGE, "-m", "comment", "--comment",
         "volatility-node: pods never leave this machine", "-j", "DROP"]  # fmt: skip
# What the kubelet, kube-proxy and the bridge plugin may change; restored at teardown.
SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
)
# Directories the kubelet creates at fixed places whatever its root dir; removed if new.
KUBELET_FIXED_DIRS = ("/var/log/pods", "/var/log/containers", "/var/lib/kubelet")


class NodeError(RuntimeError):
    """The node failed to start; the message carries the relevant log tail."""


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def _run(*args: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise NodeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


class NodePlane(ControlPlane):
    """A ControlPlane whose apiserver can reach real kubelets (logs, exec, port-forward), and
    pods can reach it: through the `kubernetes` Service, as in any cluster."""

    def __init__(self, bin_dir: Path, **kwargs: Any) -> None:
        super().__init__(bin_dir, nodes=0, **kwargs)
        pki = self.pki
        self.apiserver_args = [
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            # Pods reach the apiserver at the node's bridge address, which the `kubernetes`
            # Service's endpoint names (kube-proxy routes the Service IP to it). The bridge
            # appears only when the node starts, after the apiserver: a wildcard bind covers it
            # (clients must still present a certificate or a token).
            "--bind-address=0.0.0.0",
            f"--advertise-address={NODE_IP}",
            "--endpoint-reconciler-type=lease",
        ]

    def _make_pki(self) -> None:
        super()._make_pki()
        # system:masters: the kubelet's webhook authorizer lets the apiserver in.
        sign_cert(
            self.pki,
            "apiserver-kubelet-client",
            "/O=system:masters/CN=kube-apiserver-kubelet-client",
            "clientAuth",
        )


def sign_cert(pki: Path, name: str, subject: str, usage: str, san: str = "") -> None:
    """An EC key and a certificate for it signed by the plane's CA, in pki/<name>.{key,crt}."""
    ext = pki / f"{name}.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage={usage}\n" + (f"subjectAltName={san}\n" if san else "")
    )
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=pki,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "7", "-extfile", ext.name, "-out", f"{name}.crt", cwd=pki,
    )  # fmt: skip


class Node:
    """containerd + kubelet + kube-proxy + CoreDNS joined to `plane` as node NODE_NAME.

    start() first clears what an earlier run left, then starts everything and waits until the
    node is Ready, Services route and cluster DNS answers. stop() undoes it all.
    """

    def __init__(
        self,
        plane: ControlPlane,
        bin_dir: Path,
        image_archives: list[Path],
        *,
        tools_bin: Path,
        startup_timeout: float = 120.0,
        lock_timeout: float = 420.0,
    ) -> None:
        self.plane = plane
        self.bin_dir = Path(bin_dir)
        self.image_archives = image_archives
        self.tools_bin = tools_bin
        self.startup_timeout = startup_timeout
        self.dir = STATE_DIR
        self.sock = self.dir / "containerd" / "containerd.sock"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []
        self.kubelet_port = 0
        self.lock_timeout = lock_timeout
        self._stop_provisioning = threading.Event()
        self._provisioner: threading.Thread | None = None
        self.provisioner_errors: list[str] = []
        self._lock_file: IO[str] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Node:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Node:
        if os.geteuid() != 0:
            raise NodeError("a real node needs root (containerd, kubelet, iptables)")
        for name in ("kubelet", "kube-proxy", "crictl", "coredns"):
            if not os.access(self.bin_dir / name, os.X_OK):
                raise NodeError(f"{self.bin_dir / name} missing: run provision-node.sh")
        self._lock()
        clear_leftovers(self.bin_dir)
        try:
            self._prepare()
            self._start_containerd()
            self._import_images()
            self._start_kubelet()
            self._start_kube_proxy()
            self._start_coredns()
            self._create_storage()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every process by PID, remove every pod (CNI DEL, unmounts), undo host changes."""
        self._stop_provisioning.set()
        if self._provisioner is not None:
            self._provisioner.join(timeout=15)
            self._provisioner = None
        self._stop_proc("kubelet", grace=15)
        if "containerd" in self.procs and self.procs["containerd"].poll() is None:
            _remove_pods(self.bin_dir, self.sock)
        for name in ("traefik", "kube-proxy", "coredns", "containerd"):
            self._stop_proc(name, grace=15)
        for log in self._logs:
            log.close()
        self._logs.clear()
        # The node's own logs outlive it, for a look after a failed run.
        if (self.dir / "logs").is_dir():
            shutil.rmtree(LAST_LOGS, ignore_errors=True)
            shutil.copytree(self.dir / "logs", LAST_LOGS)
        clear_leftovers(self.bin_dir)
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None

    def _lock(self) -> None:
        # One node per machine (fixed names): a second test session waits for the first one's
        # node to go, rather than clearing it away as a leftover. The kernel drops the lock of a
        # process that dies, so a crashed run never blocks the next.
        self._lock_file = open(LOCK, "w")  # noqa: SIM115 - held until stop()
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._lock_file.close()
                    self._lock_file = None
                    raise NodeError(
                        f"another test session holds {LOCK} (its node still runs) after "
                        f"{self.lock_timeout:.0f}s"
                    ) from None
                time.sleep(1)

    # -- diagnostics -------------------------------------------------------------------------

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.dir / "logs" / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def crictl(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return _run(str(self.bin_dir / "crictl"), "--runtime-endpoint", f"unix://{self.sock}",
                    *args, check=False, timeout=timeout)  # fmt: skip

    def images(self) -> list[str]:
        """References of the images in the node's containerd (the kubelet's namespace)."""
        return _ctr(self.sock, "-n", "k8s.io", "images", "ls", "-q").stdout.split()

    def container_pid(self, namespace: str, pod: str, container: str) -> int:
        """Host PID of a running container's main process."""
        ids = self.crictl("ps", "-q", "--state", "running", "--name", f"^{container}$",
                          "--label", f"io.kubernetes.pod.namespace={namespace}",
                          "--label", f"io.kubernetes.pod.name={pod}").stdout.split()  # fmt: skip
        if len(ids) != 1:
            raise NodeError(f"expected one running {container} container in {pod}, found {ids}")
        info = json.loads(self.crictl("inspect", ids[0]).stdout)
        return int(info["info"]["pid"])

    # -- internals ---------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], cwd: Path | None = None) -> None:
        log = open(self.dir / "logs" / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd or self.dir,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.procs[name] = proc
        (self.dir / "pids" / name).write_text(f"{proc.pid} {args[0]}\n")

    def _stop_proc(self, name: str, grace: float) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "pids" / name).unlink()

    def _wait(self, what: str, check: Callable[[], bool], components: list[str]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            for name in components:
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise NodeError(
                        f"{name} exited with {proc.returncode} while waiting for {what}:\n"
                        + self.log_tail(name)
                    )
            try:
                if check():
                    return
            except (OSError, ValueError, KeyError) as e:
                last_error = e
            time.sleep(0.25)
        tails = "\n".join(f"--- {n}.log\n{self.log_tail(n)}" for n in components)
        raise NodeError(
            f"timed out after {self.startup_timeout}s waiting for {what} "
            f"(last error: {last_error})\n{tails}"
        )

    def _prepare(self) -> None:
        for sub in ("logs", "pids", "pki", "cni/net.d", "cni/ipam", "containerd", "kubelet",
                    "pod-logs", "volumes"):  # fmt: skip
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        record_host_state(self.dir)
        # The kubelet refuses a cgroup root that does not exist in every hierarchy.
        for hierarchy in CGROUPS.iterdir():
            if not (hierarchy / "cgroup.procs").exists():
                continue
            root = hierarchy / CGROUP_ROOT
            root.mkdir(exist_ok=True)
            for knob in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset children start empty
                if (hierarchy / knob).exists():
                    (root / knob).write_text((hierarchy / knob).read_text())
        # The node's address lives on a bridge the node owns; the CNI plugin reuses it.
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        _run("iptables", "-w", "-I", *GUARD)
        pki = self.dir / "pki"
        for f in ("ca.crt", "ca.key"):
            shutil.copy(self.plane.pki / f, pki / f)
        sign_cert(
            pki, "kubelet-client", f"/O=system:nodes/CN=system:node:{NODE_NAME}", "clientAuth"
        )
        sign_cert(pki, "kubelet-serving", f"/CN={NODE_NAME}", "serverAuth",
                  san=f"IP:{NODE_IP},DNS:{NODE_NAME}")  # fmt: skip
        (pki / "ca.key").unlink()
        self._write_configs()

    def _write_configs(self) -> None:
        d = self.dir
        conflist = {
            "cniVersion": "1.0.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    # No masquerading to the outside: nothing is meant to leave the machine.
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_IP}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(d / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (d / "cni" / "net.d" / "10-volatility-node.conflist").write_text(json.dumps(conflist))
        c = d / "containerd"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        (c / "config.toml").write_text(f"""\
version = 2
root = "{c / "root"}"
state = "{c / "state"}"
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{c / "opt"}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # This machine's bounding set lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  enable_unprivileged_ports = false
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d / "cni" / "net.d"}"
""")
        pki = d / "pki"
        self.kubelet_port = free_port()
        ca = str(pki / "ca.crt")
        kubelet_config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "containerRuntimeEndpoint": f"unix://{self.sock}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{CGROUP_ROOT}",
            "cgroupsPerQOS": True,
            "failSwapOn": False,
            "failCgroupV1": False,
            "address": NODE_IP,
            "port": self.kubelet_port,
            "readOnlyPort": 0,
            "healthzPort": 0,
            "tlsCertFile": str(pki / "kubelet-serving.crt"),
            "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": ca},
            },
            "authorization": {"mode": "Webhook"},
            "podLogsDir": str(d / "pod-logs"),
            "clusterDNS": [NODE_IP],
            "clusterDomain": "cluster.local",
            "resolvConf": "",  # pods get the cluster DNS only, never the host's resolvers
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "rotateCertificates": False,
            "maxPods": 60,
        }
        (d / "kubelet-config.json").write_text(json.dumps(kubelet_config, indent=2))
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "plane", "cluster": {
                "server": self.plane.server, "certificate-authority": ca}}],
            "users": [{"name": "kubelet", "user": {
                "client-certificate": str(pki / "kubelet-client.crt"),
                "client-key": str(pki / "kubelet-client.key")}}],
            "contexts": [{"name": "kubelet", "context": {"cluster": "plane", "user": "kubelet"}}],
            "current-context": "kubelet",
        }  # fmt: skip
        (d / "kubelet.kubeconfig").write_text(json.dumps(kubeconfig))
        self.proxy_healthz = f"127.0.0.1:{free_port()}"
        proxy_config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.plane.kubeconfig)},
            "hostnameOverride": NODE_NAME,
            "mode": "iptables",
            "clusterCIDR": POD_SUBNET,
            "healthzBindAddress": self.proxy_healthz,
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
            "nodePortAddresses": [f"{NODE_IP}/32"],
            # Pods on one bridge without br_netfilter: a Service's reply from a pod on the same
            # bridge would bypass the host's NAT. Masquerading every Service connection sends
            # the reply back through the host, where conntrack undoes the DNAT.
            "iptables": {"masqueradeAll": True, "localhostNodePorts": False,
                         "syncPeriod": "30s", "minSyncPeriod": "0s"},
            # Leave the host's conntrack table settings alone.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                          "tcpCloseWaitTimeout": "0s"},
        }  # fmt: skip
        (d / "kube-proxy-config.json").write_text(json.dumps(proxy_config, indent=2))
        self.dns_ready = f"127.0.0.1:{free_port()}"
        (d / "Corefile").write_text(f"""\
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {NODE_IP}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {self.plane.kubeconfig} volatility-test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    ready {self.dns_ready}
    cache 5
}}
# Nothing outside the cluster resolves: no pod is meant to reach beyond this machine.
.:53 {{
    bind {NODE_IP}
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
""")

    def _start_containerd(self) -> None:
        self._spawn(
            "containerd", ["containerd", "--config", str(self.dir / "containerd" / "config.toml")]
        )

        def up() -> bool:
            return _ctr(self.sock, "version", check=False).returncode == 0

        self._wait("containerd", up, ["containerd"])

    def _import_images(self) -> None:
        for archive in self.image_archives:
            proc = _ctr(self.sock, "-n", "k8s.io", "images", "import", str(archive),
                        check=False, timeout=300)  # fmt: skip
            if proc.returncode != 0:
                raise NodeError(f"importing {archive} failed: {proc.stderr.strip()}")

    def _start_kubelet(self) -> None:
        self._spawn("kubelet", [
            str(self.bin_dir / "kubelet"),
            f"--config={self.dir / 'kubelet-config.json'}",
            f"--kubeconfig={self.dir / 'kubelet.kubeconfig'}",
            f"--root-dir={self.dir / 'kubelet'}",
            f"--cert-dir={self.dir / 'pki'}",
            f"--node-ip={NODE_IP}",
            f"--hostname-override={NODE_NAME}",
            "--v=1",
        ])  # fmt: skip
        self._wait(f"node {NODE_NAME} Ready", self._node_schedulable, ["containerd", "kubelet"])

    def _node_schedulable(self) -> bool:
        return bool(self.plane._node_schedulable(NODE_NAME))

    def _start_kube_proxy(self) -> None:
        self._spawn("kube-proxy", [
            str(self.bin_dir / "kube-proxy"), f"--config={self.dir / 'kube-proxy-config.json'}",
        ])  # fmt: skip
        # /healthz turns 200 once the first full sync of the rules has happened.
        url = f"http://{self.proxy_healthz}/healthz"
        self._wait("kube-proxy /healthz", lambda: _get_ok(url), ["kube-proxy"])

    def _start_coredns(self) -> None:
        self._spawn("coredns", [str(self.bin_dir / "coredns"), "-conf", str(self.dir / "Corefile")])
        url = f"http://{self.dns_ready}/ready"
        self._wait("CoreDNS /ready", lambda: _get_ok(url), ["coredns"])
        # The kubernetes Service must resolve to its ClusterIP through the node's DNS address.
        self._wait(
            "cluster DNS answers",
            lambda: bool(resolve("kubernetes.default.svc.cluster.local")),
            ["coredns"],
        )

    def start_gateway_controller(self, crds: Path) -> int:
        """Traefik as the cluster's Gateway API controller (GatewayClass `traefik`).

        It runs on this machine like the other node components and reaches the pods directly.
        Returns the port of its `web` entry point on 127.0.0.1: a Gateway listener on that
        port number serves its routes there.
        """
        self.plane_kubectl("apply", "--server-side", "-f", str(crds))
        for crd in ("gatewayclasses", "gateways", "httproutes"):
            self.plane_kubectl("wait", "--for=condition=Established", "--timeout=60s",
                               f"crd/{crd}.gateway.networking.k8s.io")  # fmt: skip
        self.plane_kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS},
            "spec": {"controllerName": "traefik.io/gateway-controller"},
        }))  # fmt: skip
        web, ping = free_port(), free_port()
        work = self.dir / "traefik"
        work.mkdir(exist_ok=True)
        # Traefik reads ./traefik.yml from its working directory (and then ignores flags).
        (work / "traefik.yml").write_text(json.dumps({
            "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
            "entryPoints": {
                "web": {"address": f"127.0.0.1:{web}"},
                "ping": {"address": f"127.0.0.1:{ping}"},
            },
            "ping": {"entryPoint": "ping"},
            "log": {"level": "INFO"},
            "providers": {"kubernetesGateway": {
                "endpoint": self.plane.server,
                "token": self.plane.token,
                "certAuthFilePath": str(self.plane.ca_file),
            }},
        }, indent=2))  # fmt: skip
        self._spawn("traefik", [str(self.bin_dir / "traefik")], cwd=work)
        url = f"http://127.0.0.1:{ping}/ping"
        self._wait("Traefik /ping", lambda: _get_ok(url), ["traefik"])
        return web

    def plane_kubectl(self, *args: str, input: str | None = None) -> str:
        proc = subprocess.run(
            [str(self.tools_bin / "kubectl"), "--kubeconfig", str(self.plane.kubeconfig), *args],
            input=input, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise NodeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def _create_storage(self) -> None:
        self.plane.api("POST", "/apis/storage.k8s.io/v1/storageclasses", {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": STORAGE_CLASS, "annotations": {
                "storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": PROVISIONER,
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Delete",
        })  # fmt: skip
        self._provisioner = threading.Thread(
            target=self._provision_loop, name="hostpath-provisioner", daemon=True
        )
        self._provisioner.start()

    def _provision_loop(self) -> None:
        """A hostPath provisioner for STORAGE_CLASS: one directory per claim, on this node.

        Claims wait until the scheduler has picked the node (WaitForFirstConsumer), then get a
        PersistentVolume bound to them; a released volume is deleted with its directory.
        Directories are world-writable: hostPath ignores fsGroup, and pods run unprivileged.
        """
        while not self._stop_provisioning.wait(0.5):
            try:
                self._provision_once()
            except (OSError, ValueError, KeyError) as e:  # the plane going away at teardown
                self.provisioner_errors.append(repr(e))

    def _provision_once(self) -> None:
        claims = self.plane.api("GET", "/api/v1/persistentvolumeclaims")["items"]
        for claim in claims:
            meta, spec = claim["metadata"], claim["spec"]
            annotations = meta.get("annotations") or {}
            if (
                spec.get("storageClassName") != STORAGE_CLASS
                or spec.get("volumeName")
                or annotations.get("volume.kubernetes.io/selected-node") != NODE_NAME
            ):
                continue
            name = f"pvc-{meta['uid']}"
            path = self.dir / "volumes" / name
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)
            with contextlib.suppress(urllib.error.HTTPError):  # 409: made on an earlier pass
                self.plane.api("POST", "/api/v1/persistentvolumes", {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": name, "annotations": {
                        "pv.kubernetes.io/provisioned-by": PROVISIONER}},
                    "spec": {
                        "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                        "accessModes": spec["accessModes"],
                        "persistentVolumeReclaimPolicy": "Delete",
                        "storageClassName": STORAGE_CLASS,
                        "claimRef": {"namespace": meta["namespace"], "name": meta["name"],
                                     "uid": meta["uid"]},
                        "hostPath": {"path": str(path), "type": "Directory"},
                        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In",
                             "values": [NODE_NAME]}]}]}},
                    },
                })  # fmt: skip
        for volume in self.plane.api("GET", "/api/v1/persistentvolumes")["items"]:
            annotations = volume["metadata"].get("annotations") or {}
            if (
                annotations.get("pv.kubernetes.io/provisioned-by") == PROVISIONER
                and volume.get("status", {}).get("phase") == "Released"
            ):
                name = volume["metadata"]["name"]
                with contextlib.suppress(urllib.error.HTTPError):  # 404: already gone
                    self.plane.api("DELETE", f"/api/v1/persistentvolumes/{name}")
                shutil.rmtree(self.dir / "volumes" / name, ignore_errors=True)


# -- host state: recording, restoring, clearing leftovers --------------------------------------


def _ctr(
    sock: Path, *args: str, check: bool = True, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    return _run("ctr", "--address", str(sock), *args, check=check, timeout=timeout)


def _get_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    with urllib.request.urlopen(url, context=context, timeout=3) as r:  # noqa: S310 - loopback
        return bool(r.status == 200)


def resolve(name: str, server: str = NODE_IP) -> list[str]:
    """A-record lookup of `name` against the cluster DNS (one UDP query, no host resolver)."""
    query_id = os.getpid() & 0xFFFF
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    packet = query_id.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    packet += question + b"\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(packet, (server, 53))
        reply = s.recv(4096)
    if reply[3] & 0x0F:  # RCODE: NXDOMAIN, SERVFAIL, ...
        return []
    answers = int.from_bytes(reply[6:8], "big")
    pos = 12 + len(question) + 4
    found = []
    for _ in range(answers):
        while reply[pos] and reply[pos] < 0xC0:  # skip the owner name
            pos += reply[pos] + 1
        pos += 2 if reply[pos] >= 0xC0 else 1
        rtype, rdlength = (
            int.from_bytes(reply[pos : pos + 2], "big"),
            int.from_bytes(reply[pos + 8 : pos + 10], "big"),
        )
        pos += 10
        if rtype == 1 and rdlength == 4:
            found.append(".".join(str(b) for b in reply[pos : pos + 4]))
        pos += rdlength
    return found


def record_host_state(state_dir: Path) -> None:
    """Note the sysctls and fixed directories before the node touches them (once per run)."""
    record = state_dir / "host-state.json"
    if record.exists():  # a crashed run's record still holds the true originals
        return
    sysctls = {}
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            sysctls[name] = _sysctl_path(name).read_text().strip()
    dirs = [d for d in KUBELET_FIXED_DIRS if not Path(d).exists()]
    record.write_text(json.dumps({"sysctls": sysctls, "created_dirs": dirs}))


def _remove_pods(bin_dir: Path, sock: Path) -> None:
    # Stops and removes every sandbox: the CNI DEL frees the addresses and unmounts the netns.
    _run(str(bin_dir / "crictl"), "--runtime-endpoint", f"unix://{sock}", "--timeout", "60s",
         "rmp", "--force", "--all", check=False, timeout=180)  # fmt: skip


def _pids_in(path: Path) -> Iterator[int]:
    for procs in path.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            yield from (int(p) for p in procs.read_text().split())


def _kill_recorded(state_dir: Path) -> None:
    for pid_file in (state_dir / "pids").glob("*") if (state_dir / "pids").is_dir() else []:
        with contextlib.suppress(OSError, ValueError):
            pid_text, exe = pid_file.read_text().split()
            pid = int(pid_text)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            if cmdline == exe:  # the same process, not a reused PID
                os.kill(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)


def clear_leftovers(bin_dir: Path) -> None:
    """Undo everything a node (running, stopped or crashed half-way) left on this machine."""
    d = STATE_DIR
    sock = d / "containerd" / "containerd.sock"
    config = d / "containerd" / "config.toml"
    if d.exists():
        _kill_recorded_named(d, "kubelet")
        # Pods of a crashed run: bring its containerd back so that the CRI removes them properly.
        if config.exists():
            ctrd = None
            if _ctr(sock, "version", check=False).returncode != 0:
                ctrd = subprocess.Popen(
                    ["containerd", "--config", str(config)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and _ctr(sock, "version", check=False).returncode:
                    time.sleep(0.2)
            if (bin_dir / "crictl").exists():
                _remove_pods(bin_dir, sock)
            if ctrd is not None:
                ctrd.terminate()
                try:
                    ctrd.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    ctrd.kill()
        _kill_recorded(d)
        # Shims and container processes that outlived everything else.
        for sub in CGROUPS.glob(f"*/{CGROUP_ROOT}"):
            for pid in _pids_in(sub):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                if str(sock).encode() in (proc / "cmdline").read_bytes():
                    os.kill(int(proc.name), signal.SIGKILL)
    if (bin_dir / "kube-proxy").exists():
        _run(str(bin_dir / "kube-proxy"), "--cleanup", check=False)
    _drop_kube_chains()
    while _run("iptables", "-w", "-D", *GUARD, check=False).returncode == 0:
        pass
    _unmount_below(d)
    for ns in Path("/run/netns").glob("cni-*"):
        with contextlib.suppress(OSError):
            subprocess.run(["umount", "-l", str(ns)], capture_output=True, check=False)
            ns.unlink()
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        _run("ip", "link", "del", BRIDGE, check=False)
    for sub in CGROUPS.glob(f"*/{CGROUP_ROOT}"):
        _remove_cgroup_tree(sub)
    record = d / "host-state.json"
    if record.exists():
        state = json.loads(record.read_text())
        for name, value in state["sysctls"].items():
            with contextlib.suppress(OSError):
                if _sysctl_path(name).read_text().strip() != value:
                    _sysctl_path(name).write_text(value)
        for path in state["created_dirs"]:
            _unmount_below(Path(path))
            shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(d, ignore_errors=True)
    if d.exists():
        raise NodeError(f"could not remove {d}: {list(d.rglob('*'))[:10]}")


def _kill_recorded_named(state_dir: Path, name: str) -> None:
    pid_file = state_dir / "pids" / name
    if not pid_file.exists():
        return
    with contextlib.suppress(OSError, ValueError):
        pid_text, exe = pid_file.read_text().split()
        pid = int(pid_text)
        if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode() == exe:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
    pid_file.unlink(missing_ok=True)


def _unmount_below(root: Path) -> None:
    prefix = str(root).rstrip("/") + "/"
    mounts = [
        line.split()[1].encode().decode("unicode_escape")
        for line in Path("/proc/mounts").read_text().splitlines()
    ]
    for target in sorted((m for m in mounts if m.startswith(prefix) or m == str(root)),
                         key=len, reverse=True):  # fmt: skip
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)


def _remove_cgroup_tree(root: Path) -> None:
    # Deepest first: a cgroup directory can only go once its children are gone.
    for sub in sorted(
        (p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
    ):
        with contextlib.suppress(OSError):
            sub.rmdir()
    with contextlib.suppress(OSError):
        root.rmdir()


def _drop_kube_chains() -> None:
    """The KUBE-* chains the kubelet and kube-proxy create (kube-proxy --cleanup leaves some)."""
    for table in ("filter", "nat", "mangle"):
        listing = _run("iptables", "-w", "-t", table, "-S", check=False).stdout.splitlines()
        for rule in listing:
            parts = rule.split()
            if (
                parts[:1] == ["-A"]
                and any(p.startswith("KUBE-") for p in parts[2:])
                and not parts[1].startswith("KUBE-")
            ):
                _run("iptables", "-w", "-t", table, "-D", *parts[1:], check=False)
        chains = [r.split()[1] for r in listing if r.startswith("-N KUBE-")]
        for chain in chains:
            _run("iptables", "-w", "-t", table, "-F", chain, check=False)
        for chain in chains:
            _run("iptables", "-w", "-t", table, "-X", chain, check=False)
