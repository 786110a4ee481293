"""A server binary the tests run on loopback: its own work directory and log, started with a
readiness wait on ``/-/ready`` (Prometheus and Alertmanager both serve it), stopped with SIGTERM
and removed with its directory. A start that fails stops the process and says why."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from tests.infra.ports import free_port


class LoopbackServer:
    name = "server"  # the binary, its log and its work directory are named after it

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.workdir = Path(tempfile.mkdtemp(prefix=f"volatility-{self.name}-"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def arguments(self) -> list[str]:
        """The binary's arguments (after writing whatever configuration it reads)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._log = open(self.workdir / f"{self.name}.log", "wb")
        self.proc = subprocess.Popen(
            [str(self.bin_dir / self.name), *self.arguments()],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                message = f"{self.name} did not get ready:\n{self.log_tail()}"
                self.__exit__(None, None, None)  # stop it and remove its directory
                raise RuntimeError(message)
            time.sleep(0.2)  # poll /-/ready against the deadline
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:  # noqa: S310
                return bool(r.status == 200)
        except OSError:
            return False

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / f"{self.name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
