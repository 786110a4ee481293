"""A real Kubernetes control plane on 127.0.0.1 for the cluster tests.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the upstream binaries built
by tests/infra/provision-k8s.sh; kwok stands in for kubelets. It keeps fake nodes Ready and moves
scheduled pods through their lifecycle (Running+Ready, Succeeded for run-to-completion pods,
removal on delete), so Deployments roll out, Jobs complete and `helm install --wait` /
`helm test` behave as on a real cluster. No container ever runs.

Everything lives in one temporary directory (certificates, etcd data, logs, kubeconfig) and every
process is stopped by PID, so several planes can run side by side.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import functools
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from tests.infra.ports import free_port

# Cluster-internal ranges: nothing routes to them, they only have to be valid and disjoint.
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # first address of SERVICE_CIDR, where the `kubernetes` Service lives
POD_CIDR = "10.244.0.0/16"
FAKE_NODE_IP = "10.240.0.10"
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"

# kwok stages, written for this project. Node stages keep every managed node Ready (the lease
# keeps the node controller happy; a slow status heartbeat refreshes conditions). Pod stages:
# a scheduled pod becomes Running+Ready at once; a Running pod that is meant to finish
# (restartPolicy Never/OnFailure: Job pods, `helm test` hooks) then succeeds; a deleted pod is
# removed, since no kubelet will confirm termination.
_STAGES = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: node-become-ready}
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - {key: '.status.conditions.[] | select( .type == "Ready" ) | .status', operator: NotIn,
       values: ['True']}
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      {{ range NodeConditions }}
      - type: {{ .type | Quote }}
        status: {{ .status | Quote }}
        reason: {{ .reason | Quote }}
        message: {{ .message | Quote }}
        lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $now | Quote }}
      {{ end }}
      addresses:
      - {type: InternalIP, address: {{ NodeIP | Quote }}}
      - {type: Hostname, address: {{ NodeName | Quote }}}
      allocatable: {cpu: "64", memory: 256Gi, pods: "250", ephemeral-storage: 1Ti}
      capacity: {cpu: "64", memory: 256Gi, pods: "250", ephemeral-storage: 1Ti}
      nodeInfo:
        architecture: amd64
        operatingSystem: linux
        kubeletVersion: @KUBELET_VERSION@
        kubeProxyVersion: @KUBELET_VERSION@
        containerRuntimeVersion: {{ printf "kwok://%s" Version | Quote }}
        kernelVersion: fake
        osImage: kwok
        machineID: ""
        systemUUID: ""
        bootID: ""
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: node-heartbeat}
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - {key: '.status.conditions.[] | select( .type == "Ready" ) | .status', operator: In,
       values: ['True']}
  delay: {durationMilliseconds: 60000, jitterDurationMilliseconds: 90000}
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      {{ range NodeConditions }}
      - type: {{ .type | Quote }}
        status: {{ .status | Quote }}
        reason: {{ .reason | Quote }}
        message: {{ .message | Quote }}
        lastHeartbeatTime: {{ $now | Quote }}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: pod-start}
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: .metadata.deletionTimestamp, operator: DoesNotExist}
    - {key: .status.podIP, operator: DoesNotExist}
  next:
    statusTemplate: |
      {{ $now := Now }}
      phase: Running
      startTime: {{ $now | Quote }}
      hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
      podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
      conditions:
      - {type: PodScheduled, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: ContainersReady, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: Ready, status: "True", lastTransitionTime: {{ $now | Quote }}}
      {{ range .spec.readinessGates }}
      - {type: {{ .conditionType | Quote }}, status: "True", lastTransitionTime: {{ $now | Quote }}}
      {{ end }}
      initContainerStatuses:
      {{ range .spec.initContainers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        restartCount: 0
        {{ if eq .restartPolicy "Always" }}
        ready: true
        started: true
        state: {running: {startedAt: {{ $now | Quote }}}}
        {{ else }}
        ready: true
        state: {terminated: {exitCode: 0, reason: Completed, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}}
        {{ end }}
      {{ end }}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: true
        started: true
        restartCount: 0
        state: {running: {startedAt: {{ $now | Quote }}}}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: pod-finish}
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: .metadata.deletionTimestamp, operator: DoesNotExist}
    - {key: .status.phase, operator: In, values: [Running]}
    - {key: .spec.restartPolicy, operator: In, values: [Never, OnFailure]}
  next:
    statusTemplate: |
      {{ $now := Now }}
      phase: Succeeded
      conditions:
      - {type: ContainersReady, status: "False", reason: PodCompleted, lastTransitionTime: {{ $now | Quote }}}
      - {type: Ready, status: "False", reason: PodCompleted, lastTransitionTime: {{ $now | Quote }}}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: false
        started: false
        restartCount: 0
        state: {terminated: {exitCode: 0, reason: Completed, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: pod-remove}
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: .metadata.deletionTimestamp, operator: Exists}
  next:
    finalizers: {empty: true}
    delete: true
"""  # noqa: E501 - Go template lines read best unbroken

_PR_SET_PDEATHSIG = 1


class ControlPlaneError(RuntimeError):
    """A component failed to start or become ready; the message carries its log tail."""


def _die_with_parent() -> None:
    # Runs in the child before exec: if the test process is killed outright, the kernel takes
    # its components down too instead of leaving an apiserver behind on a random port.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)} failed: {proc.stderr.strip()}")


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok.

    Use as a context manager or call start()/stop(). After start(): `kubeconfig` (admin, token
    auth, CA-verified), `server`, `token`, `ca_file` and `node_names` are set. PodSecurity
    admission is active, so namespace labels `pod-security.kubernetes.io/*` are enforced.
    """

    def __init__(
        self,
        bin_dir: Path,
        *,
        nodes: int = 1,
        workdir: Path | None = None,
        keep_workdir: bool = False,
        startup_timeout: float = 120.0,
    ) -> None:
        self.bin_dir = Path(bin_dir)
        self.node_count = nodes
        self._own_workdir = workdir is None
        self.workdir = (
            Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="volatility-k8s-"))
        )
        self.keep_workdir = keep_workdir
        self.startup_timeout = startup_timeout
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []
        self.token = secrets.token_hex(24)
        self.pki = self.workdir / "pki"
        self.ca_file = self.pki / "ca.crt"
        self.kubeconfig = self.workdir / "kubeconfig"
        self.server = ""
        self.node_names = [f"kwok-node-{i}" for i in range(nodes)]
        self.kube_version = ""
        # Extra kube-apiserver flags, e.g. the kubelet client certificate for real nodes.
        self.apiserver_args: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
            if not os.access(self.bin_dir / name, os.X_OK):
                raise ControlPlaneError(f"{self.bin_dir / name} missing: run provision-k8s.sh")
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._make_pki()
            self._start_etcd()
            self._start_apiserver()
            self._start_controllers()
            self._start_kwok()
            self._register_nodes()
            self._wait_usable()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, grace: float = 15.0) -> None:
        """Stop the components one by one, dependants first (kwok ... etcd).

        Each gets SIGTERM and `grace` seconds before SIGKILL. In this order each one still
        reaches what it depends on while it shuts down, so nobody hangs retrying a dead peer.
        """
        for proc in reversed(self.procs.values()):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.procs.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self._own_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- API access --------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        """One JSON request to the apiserver as the admin user; returns the decoded body."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 - fixed https URL of our own apiserver
            self.server + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, context=self.ssl_context(), timeout=timeout) as r:  # noqa: S310
            return json.loads(r.read() or b"null")

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- internals ---------------------------------------------------------------------------

    def _spawn(self, name: str, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        self.procs[name] = subprocess.Popen(
            [str(self.bin_dir / name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # only prctl: safe between fork and exec
        )

    def _wait(self, what: str, check: Callable[[], bool], components: Sequence[str]) -> None:
        """Poll `check` until it holds; fail early if a component it depends on exits."""
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            for name in components:
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise ControlPlaneError(
                        f"{name} exited with {proc.returncode} while waiting for {what}:\n"
                        + self.log_tail(name)
                    )
            try:
                if check():
                    return
            except (OSError, ValueError, KeyError) as e:  # not up yet: refused, 5xx, 404, TLS
                last_error = e
            time.sleep(0.2)
        tails = "\n".join(f"--- {n}.log\n{self.log_tail(n)}" for n in components)
        raise ControlPlaneError(
            f"timed out after {self.startup_timeout}s waiting for {what} "
            f"(last error: {last_error})\n{tails}"
        )

    @staticmethod
    def _get_ok(url: str, context: ssl.SSLContext | None = None, token: str | None = None) -> bool:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        req = urllib.request.Request(url, headers=headers)  # noqa: S310 - our own 127.0.0.1 URL
        with urllib.request.urlopen(req, context=context, timeout=3) as r:  # noqa: S310
            return bool(r.status == 200)

    def _make_pki(self) -> None:
        self.pki.mkdir(exist_ok=True)
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
        _openssl(
            "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "7",
            "-subj", "/CN=volatility-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=self.pki,
        )  # fmt: skip
        (self.pki / "serving.ext").write_text(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid\n"
            f"subjectAltName=IP:127.0.0.1,IP:{SERVICE_IP},DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc,"
            "DNS:kubernetes.default.svc.cluster.local\n"
        )
        _openssl(
            "req", *ec, "-keyout", "apiserver.key", "-out", "apiserver.csr",
            "-subj", "/CN=kube-apiserver", cwd=self.pki,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "7", "-extfile", "serving.ext", "-out", "apiserver.crt",
            cwd=self.pki,
        )  # fmt: skip
        # ServiceAccount tokens are signed with their own key pair, as on a real cluster.
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                 "-out", "sa.key", cwd=self.pki)  # fmt: skip
        _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=self.pki)
        # Static token auth: one admin in system:masters for tests and controllers alike.
        (self.pki / "tokens.csv").write_text(f'{self.token},admin,admin-uid,"system:masters"\n')

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        self._spawn("etcd", [
            "--name=etcd0",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=etcd0=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync",  # throwaway data: skip fsync, it dominates write latency
            "--log-level=warn",
        ])  # fmt: skip
        self._wait("etcd /health", lambda: self._get_ok(f"{self.etcd_url}/health"), ["etcd"])

    def _start_apiserver(self) -> None:
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        pki = self.pki
        self._spawn("kube-apiserver", [
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            # Without it the apiserver looks for a default route to pick an address and refuses
            # to start on hosts without one.
            "--advertise-address=127.0.0.1",
            # The `kubernetes` Service cannot have a loopback endpoint (validation refuses it)
            # and nothing runs in-cluster to call it, so skip reconciling it.
            "--endpoint-reconciler-type=none",
            f"--secure-port={port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC",
            # Listed explicitly (it is also on by default) because the restricted-namespace
            # tests depend on it.
            "--enable-admission-plugins=PodSecurity",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--profiling=false",
            *self.apiserver_args,
        ])  # fmt: skip
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        self._wait(
            "kube-apiserver /readyz",
            lambda: self._get_ok(f"{self.server}/readyz", ctx, self.token),
            ["etcd", "kube-apiserver"],
        )
        self.kube_version = str(self.api("GET", "/version")["gitVersion"])
        self._write_kubeconfig()

    def _write_kubeconfig(self) -> None:
        ca = base64.b64encode(self.ca_file.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "volatility-test", "cluster": {
                    "server": self.server, "certificate-authority-data": ca}},
            ],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [
                {"name": "volatility-test", "context": {
                    "cluster": "volatility-test", "user": "admin", "namespace": "default"}},
            ],
            "current-context": "volatility-test",
        }  # fmt: skip
        # JSON is valid YAML, so no YAML library is needed to write a kubeconfig.
        self.kubeconfig.write_text(json.dumps(config, indent=2))
        self.kubeconfig.chmod(0o600)

    def _start_controllers(self) -> None:
        kc = str(self.kubeconfig)
        common = [
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
        ]
        kcm_port, sched_port = free_port(), free_port()
        pki = self.pki
        self._spawn("kube-controller-manager", [
            *common,
            f"--secure-port={kcm_port}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",  # published to pods as kube-root-ca.crt
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
        ])  # fmt: skip
        self._spawn("kube-scheduler", [*common, f"--secure-port={sched_port}"])
        # Their serving certificates are self-signed in memory: health only, not identity.
        insecure = ssl._create_unverified_context()  # noqa: S323
        for name, port in (("kube-controller-manager", kcm_port), ("kube-scheduler", sched_port)):
            self._wait(
                f"{name} /healthz",
                functools.partial(self._get_ok, f"https://127.0.0.1:{port}/healthz", insecure),
                ["kube-apiserver", name],
            )

    def _start_kwok(self) -> None:
        stages = self.workdir / "kwok-stages.yaml"
        stages.write_text(_STAGES.replace("@KUBELET_VERSION@", json.dumps(self.kube_version)))
        port = free_port()
        # kwok reads and writes ~/.kwok; keep it inside the work dir.
        env = {**os.environ, "HOME": str(self.workdir)}
        env.pop("KUBECONFIG", None)
        self._spawn("kwok", [
            f"--kubeconfig={self.kubeconfig}",
            f"--config={stages}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
            "--node-lease-duration-seconds=40",
            f"--cidr={POD_CIDR}",
            f"--node-ip={FAKE_NODE_IP}",
            f"--server-address=127.0.0.1:{port}",
        ], env=env)  # fmt: skip
        self._wait(
            "kwok /healthz",
            lambda: self._get_ok(f"http://127.0.0.1:{port}/healthz"),
            ["kube-apiserver", "kwok"],
        )

    def _register_nodes(self) -> None:
        for name in self.node_names:
            self.api("POST", "/api/v1/nodes", {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {
                        FAKE_NODE_ANNOTATION: "fake",
                        "node.alpha.kubernetes.io/ttl": "0",
                    },
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "type": "kwok",
                    },
                },
            })  # fmt: skip

    def _node_schedulable(self, name: str) -> bool:
        node = self.api("GET", f"/api/v1/nodes/{name}")
        ready = any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in node.get("status", {}).get("conditions", [])
        )
        # The node lifecycle controller taints a node not-ready until it has seen it Ready;
        # the scheduler would refuse pods until that taint is gone.
        taints = [t["key"] for t in node.get("spec", {}).get("taints", [])]
        return ready and not any(k.startswith("node.kubernetes.io/") for k in taints)

    def _default_service_account(self) -> bool:
        try:
            self.api("GET", "/api/v1/namespaces/default/serviceaccounts/default")
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return False
            raise
        return True

    def _wait_usable(self) -> None:
        everything = list(self.procs)
        for name in self.node_names:
            ready = functools.partial(self._node_schedulable, name)
            self._wait(f"node {name} Ready", ready, everything)
        # Pods are refused until their namespace's default ServiceAccount exists.
        self._wait("ServiceAccount default/default", self._default_service_account, everything)


class CommandFailed(subprocess.CalledProcessError):
    """A kubectl/helm call failed; str() shows its output so the test report explains why."""

    def __str__(self) -> str:
        return (
            f"{' '.join(map(str, self.cmd))} exited with {self.returncode}\n"
            f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


@dataclass
class Kube:
    """What the `kube` test fixture yields: a started plane plus kubectl/helm wired to it."""

    plane: ControlPlane
    tools_bin: Path
    k8s_bin: Path
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        path = os.pathsep.join([str(self.tools_bin), str(self.k8s_bin), os.environ.get("PATH", "")])
        self.env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PATH": path}
        # Keep helm's caches and plugins out of the developer's home directory.
        for var, sub in (("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"),
                         ("HELM_DATA_HOME", "data")):  # fmt: skip
            self.env[var] = str(self.plane.workdir / "helm" / sub)

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 120.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            list(args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )
        if check and proc.returncode != 0:
            raise CommandFailed(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 120.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, check=check, timeout=timeout, input=input)

    def helm(
        self, *args: str, check: bool = True, timeout: float = 300.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run("helm", *args, check=check, timeout=timeout, input=input)

    def namespace(self, prefix: str, pod_security: str | None = None) -> str:
        name = f"{prefix}-{secrets.token_hex(3)}"
        self.kubectl("create", "namespace", name)
        if pod_security:
            self.kubectl(
                "label", "namespace", name,
                f"pod-security.kubernetes.io/enforce={pod_security}",
                "pod-security.kubernetes.io/enforce-version=latest",
            )  # fmt: skip
        # Pods are refused until the namespace's default ServiceAccount exists; it is created
        # asynchronously by kube-controller-manager.
        self.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=60s")
        return name
