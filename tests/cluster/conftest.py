"""Cluster tier: tests against a real Kubernetes control plane (see tests/infra/kubernetes.md).

The session-scoped fixture `kube` starts one control plane per session (etcd, kube-apiserver
v1.34, kube-controller-manager, kube-scheduler and kwok with one fake node) and yields a
`Kube` (annotate with `from tests.infra.controlplane import Kube`):

    kube.kubeconfig: pathlib.Path      admin kubeconfig (token auth, CA-verified TLS)
    kube.env: dict[str, str]           os.environ + KUBECONFIG + PATH with helm/kubectl first
    kube.run(*args, check=True, timeout=120.0, input=None) -> subprocess.CompletedProcess[str]
                                       runs e.g. ("kubectl", "get", "nodes") or ("helm", ...)
                                       with that env, text output captured; on failure with
                                       check=True raises CommandFailed showing stdout/stderr
    kube.kubectl(*args, **kw) / kube.helm(*args, **kw)   shorthands for run("kubectl", ...)
    kube.namespace(prefix, pod_security=None) -> str
                                       creates a uniquely named namespace (optionally labelled
                                       pod-security.kubernetes.io/enforce=<level>); it
                                       lives until the plane stops at session end
    kube.tools_bin, kube.k8s_bin: Path    helm/kubectl dir and control-plane binaries dir
    kube.plane: ControlPlane           server URL, token, ca_file, node_names, logs in workdir

kwok nodes do not run containers: pods only report Running+Ready, run-to-completion pods
(Jobs, `helm test` hooks) report Succeeded, probes and images are never exercised.

Every test in this directory carries the `cluster` marker. Binaries are provisioned before the
first test (outside the per-test timeout): warm, that takes well under a second; cold it is a
Go build of about 15 to 25 minutes. Set VOLATILITY_KEEP_CLUSTER=1 to keep the work dir (logs,
kubeconfig) after the session.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.controlplane import ControlPlane, Kube

INFRA = Path(__file__).resolve().parents[1] / "infra"

_BIN_DIRS = pytest.StashKey[tuple[Path, Path]]()


def _provision(script: str) -> Path:
    # The scripts print progress on stderr (left on the terminal: a cold build takes minutes)
    # and the bin dir on their last stdout line.
    proc = subprocess.run(
        ["bash", str(INFRA / script)], stdout=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode != 0:
        raise pytest.UsageError(f"tests/infra/{script} failed with exit code {proc.returncode}")
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.hookimpl(tryfirst=True)  # before `-m` deselection looks at the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.cluster)


def pytest_collection_finish(session: pytest.Session) -> None:
    # Provision here rather than in the fixture: a cold build would blow the per-test timeout.
    if session.config.option.collectonly:
        return
    if not any(item.get_closest_marker("cluster") for item in session.items):
        return
    capman = session.config.pluginmanager.getplugin("capturemanager")
    # Uncaptured, so a cold build shows its progress instead of looking hung.
    with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
        session.config.stash[_BIN_DIRS] = (
            _provision("provision-tools.sh"),
            _provision("provision-k8s.sh"),
        )


@pytest.fixture(scope="session")
def kube(request: pytest.FixtureRequest) -> Iterator[Kube]:
    dirs = request.config.stash.get(_BIN_DIRS, None)
    if dirs is None:  # e.g. the fixture used from outside this directory
        dirs = (_provision("provision-tools.sh"), _provision("provision-k8s.sh"))
    tools_bin, k8s_bin = dirs
    keep = os.environ.get("VOLATILITY_KEEP_CLUSTER") == "1"
    with ControlPlane(k8s_bin, keep_workdir=keep) as plane:
        if keep:
            print(f"\ncontrol plane work dir: {plane.workdir}", file=sys.stderr)
        yield Kube(plane, tools_bin, k8s_bin)
