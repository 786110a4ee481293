"""A real single-node Apache Kafka (KRaft, combined broker + controller) for tests and benchmarks.

The jars come from Maven Central through ``tests/infra/provision-kafka.sh``; the broker runs as a
plain ``java`` process on 127.0.0.1 with free ports and a private data directory.

    with KafkaBroker() as broker:
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers})

Run this file directly to keep a broker up for manual work (Ctrl-C stops it).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tests.infra.ports import free_port

PROVISION_SCRIPT = Path(__file__).resolve().parent / "provision-kafka.sh"
NODE_ID = 1

# Two cores are shared by the broker, the services under test and pytest: a serial collector and
# two JIT threads keep the JVM from competing with them, and a small heap keeps RSS modest.
DEFAULT_JVM_OPTIONS: tuple[str, ...] = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:CICompilerCount=2",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)

# Thread pools sized for two cores; internal topics shrunk to one replica and few partitions so
# the first consumer group and the first transaction do not wait for 50 partitions to be created.
BASE_CONFIG: dict[str, str] = {
    "process.roles": "broker,controller",
    "node.id": str(NODE_ID),
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "num.network.threads": "2",
    "num.io.threads": "4",
    "background.threads": "4",
    "num.recovery.threads.per.data.dir": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "4",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "4",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    # Without this a new group waits 3 s for more members before the first assignment.
    "group.initial.rebalance.delay.ms": "0",
    # After a crash the restarted node cannot register again until the controller has fenced
    # the old incarnation, i.e. until its session expires (9 s by default).
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "3000",
}

LOG4J2_PROPERTIES = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""

log = logging.getLogger(__name__)


class KafkaBrokerError(RuntimeError):
    """The broker could not be provisioned, started or stopped."""


def kafka_home(version: str | None = None) -> Path:
    """Return the Kafka home (with ``libs/*.jar``), provisioning it on first use.

    ``VOLATILITY_KAFKA_HOME`` points at an existing home and skips provisioning. Otherwise the
    provision script runs; it is a stamp-file check (milliseconds) once the cache is warm.
    """
    override = os.environ.get("VOLATILITY_KAFKA_HOME")
    if override:
        home = Path(override)
    else:
        env = dict(os.environ)
        if version:
            env["KAFKA_VERSION"] = version
        # stderr is inherited so a cold Maven download shows its progress and errors.
        proc = subprocess.run(
            ["bash", str(PROVISION_SCRIPT)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            timeout=1800,
            check=False,
        )
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise KafkaBrokerError(f"{PROVISION_SCRIPT} failed with exit code {proc.returncode}")
        home = Path(lines[-1])
    if not any((home / "libs").glob("kafka_2.13-*.jar")):
        raise KafkaBrokerError(f"{home} has no libs/kafka_2.13-*.jar")
    return home


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise KafkaBrokerError("java not found: Kafka needs Java 17+ on PATH or in JAVA_HOME")
    return found


def _random_cluster_id() -> str:
    # Kafka cluster ids are 16 random bytes in unpadded URL-safe base64 (22 characters).
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


class KafkaBroker:
    """One Kafka process acting as both broker and KRaft controller.

    Ports and the data directory are fixed at the first ``start()`` and kept by ``restart()``, so
    clients reconnect to the same address and find their topics and committed offsets again.
    """

    def __init__(
        self,
        home: Path | None = None,
        workdir: Path | None = None,
        *,
        config: Mapping[str, str] | None = None,
        jvm_options: Sequence[str] = DEFAULT_JVM_OPTIONS,
        startup_timeout: float = 120.0,
        die_with_parent: bool = True,
    ) -> None:
        """Prepare a broker; nothing runs until ``start()``.

        ``config`` adds to or overrides the server properties. ``die_with_parent`` makes the
        kernel kill the broker when the thread that started it exits (Linux ``setpriv``), so a
        crashed test run does not leave a JVM behind.
        """
        self.home = home
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="volatility-kafka-"))
        self.extra_config = dict(config or {})
        self.jvm_options = tuple(jvm_options)
        self.startup_timeout = startup_timeout
        self.die_with_parent = die_with_parent
        self.port = 0
        self.controller_port = 0
        self.last_startup_seconds = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._formatted = False
        self._cds_dump: Path | None = None

    # -- public API -------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        if not self.port:
            raise KafkaBrokerError("the broker has not been started")
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "broker.log"

    def start(self) -> Self:
        """Format storage (first time only), launch the JVM and block until it serves metadata."""
        if self.is_running:
            return self
        if self.home is None:
            self.home = kafka_home()
        first = not self.port
        # A port picked by free_port() can be taken before the JVM binds it; only the first start
        # may move to new ports, since restart() promises the same address.
        for attempt in range(3 if first else 1):
            if first:
                self.port, self.controller_port = free_port(), free_port()
            self._write_config()
            if not self._formatted:
                self._format()
            try:
                self._launch_and_wait()
                return self
            except KafkaBrokerError:
                if first and attempt < 2 and "Address already in use" in self.log_tail():
                    log.warning("kafka port clash on %s, retrying with new ports", self.port)
                    continue
                self._terminate(signal.SIGKILL, timeout=10)
                raise
        raise AssertionError("unreachable")

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful shutdown (SIGTERM), escalating to SIGKILL after ``timeout`` seconds."""
        self._terminate(signal.SIGTERM, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would: no flush, no controlled shutdown."""
        self._terminate(signal.SIGKILL, timeout=10)

    def restart(self, timeout: float = 30.0) -> None:
        """Stop if running, then start on the same ports with the same data."""
        if not self.port:
            raise KafkaBrokerError("restart() before start()")
        self.stop(timeout)
        self.start()

    def close(self) -> None:
        """Stop the broker and remove the work directory if this object created it."""
        self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def rss_bytes(self) -> int:
        """Resident memory of the broker process, from /proc."""
        if self._proc is None or not self.is_running:
            raise KafkaBrokerError("the broker is not running")
        for line in Path(f"/proc/{self._proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise KafkaBrokerError("VmRSS missing from /proc status")

    def wait(self) -> int:
        """Block until the broker process exits on its own; return its exit code."""
        if self._proc is None:
            raise KafkaBrokerError("the broker is not running")
        return self._proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _classpath(self) -> str:
        assert self.home is not None
        return str(self.home / "libs" / "*")

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = {
            **BASE_CONFIG,
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            # A static voter set needs no --standalone/--initial-controllers at format time and
            # survives restarts without any dynamic-quorum bookkeeping.
            "controller.quorum.voters": f"{NODE_ID}@127.0.0.1:{self.controller_port}",
            "log.dirs": str(self.data_dir),
            **self.extra_config,
        }
        body = "".join(f"{k}={v}\n" for k, v in props.items())
        (self.workdir / "server.properties").write_text(body)
        (self.workdir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)

    def _java_command(self, main_class: str, *args: str) -> list[str]:
        return [
            _java(),
            *self.jvm_options,
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            "-cp",
            self._classpath(),
            main_class,
            *args,
        ]

    def _format(self) -> None:
        cmd = self._java_command(
            "kafka.tools.StorageTool",
            "format",
            # One token: an id may start with "-", which the tool would read as an option.
            f"--cluster-id={_random_cluster_id()}",
            "--config",
            str(self.workdir / "server.properties"),
        )
        cmd[1:1] = self._class_data_sharing_options(dump=False)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise KafkaBrokerError(f"kafka storage format failed:\n{proc.stdout}{proc.stderr}")
        self._formatted = True

    def _launch_and_wait(self) -> None:
        cmd = self._java_command("kafka.Kafka", str(self.workdir / "server.properties"))
        cmd[1:1] = self._class_data_sharing_options(dump=True)
        setpriv = shutil.which("setpriv") if self.die_with_parent else None
        if setpriv:
            cmd = [setpriv, "--pdeathsig", "KILL", *cmd]
        self._close_log()
        self._log_file = self.log_path.open("ab")
        self._log_file.write(f"===== launch at {time.time():.3f}\n".encode())
        self._log_file.flush()
        started = time.monotonic()
        # Own session: a Ctrl-C aimed at pytest must not reach the JVM before teardown does.
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )
        self._wait_ready(started + self.startup_timeout)
        self.last_startup_seconds = time.monotonic() - started
        log.info(
            "kafka up at %s (pid %s) in %.2fs",
            self.bootstrap_servers,
            self.pid,
            self.last_startup_seconds,
        )

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise KafkaBrokerError(
                f"kafka exited with code {self._proc.returncode} during startup; "
                f"log {self.log_path}:\n{self.log_tail()}"
            )

    def _wait_ready(self, deadline: float) -> None:
        # Cheap TCP probes first: librdkafka would log an error line for every refused attempt.
        while True:
            self._check_alive()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise KafkaBrokerError(self._timeout_message("listener never opened"))
            time.sleep(0.1)
        # The listener opens once the broker has caught up with the metadata log; ready means
        # the broker also lists itself as a live node, i.e. it is registered and unfenced.
        # The typed stubs accept only scalar values, but librdkafka's log routing takes a Logger.
        admin_config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "logger": log.getChild("admin"),
        }
        admin = AdminClient(admin_config)
        while True:
            self._check_alive()
            try:
                metadata = admin.list_topics(timeout=2)
                if NODE_ID in metadata.brokers:
                    return
            except KafkaException:
                pass
            if time.monotonic() > deadline:
                raise KafkaBrokerError(self._timeout_message("broker never listed itself"))
            time.sleep(0.1)

    def _timeout_message(self, what: str) -> str:
        return (
            f"kafka not ready after {self.startup_timeout:.0f}s ({what}); "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def _terminate(self, sig: signal.Signals, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            if sig == signal.SIGTERM and self._cds_dump is not None:
                timeout = max(timeout, 120.0)  # the JVM writes its class archive before exiting
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning(
                    "kafka pid %s ignored %s for %.0fs; killing", proc.pid, sig.name, timeout
                )
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        self._proc = None
        self._close_log()
        self._keep_class_archive(clean_exit=proc.returncode in (0, 128 + signal.SIGTERM))

    def _class_archive(self) -> Path:
        # The JVM rejects an archive from another JDK build or other GC/heap flags, so the name
        # carries both; a JDK upgrade then makes a fresh archive instead of a dead one.
        assert self.home is not None
        java = Path(_java()).resolve()
        key = f"{java}:{java.stat().st_mtime_ns}:{' '.join(self.jvm_options)}"
        return self.home / f"kafka-{hashlib.sha256(key.encode()).hexdigest()[:12]}.jsa"

    def _class_data_sharing_options(self, dump: bool) -> list[str]:
        # Loading the broker's classes dominates startup on two busy cores. The first broker that
        # stops gracefully leaves a class-data-sharing archive next to the jars; later JVMs map
        # it and start markedly faster.
        assert self.home is not None
        archive = self._class_archive()
        if archive.is_file():
            return [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
        if dump and self._cds_dump is None and os.access(self.home, os.W_OK):
            self._cds_dump = archive.with_name(f".{archive.name}.{os.getpid()}.{id(self)}")
            return [f"-XX:ArchiveClassesAtExit={self._cds_dump}"]
        return []

    def _keep_class_archive(self, clean_exit: bool) -> None:
        dump, self._cds_dump = self._cds_dump, None
        if dump is None or not dump.exists():
            return
        # A JVM killed while writing leaves a truncated archive; only a clean exit publishes.
        if clean_exit:
            os.replace(dump, self._class_archive())
        else:
            dump.unlink()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class TopicFactory:
    """Creates uniquely named topics (prefix + random suffix) and deletes them on request."""

    def __init__(self, admin: AdminClient, prefix: str) -> None:
        self._admin = admin
        # Topic names allow only [a-zA-Z0-9._-]; test ids carry brackets and slashes.
        self._prefix = re.sub(r"[^a-zA-Z0-9._-]+", "-", prefix)[:80].strip("-") or "topic"
        self.created: list[str] = []

    def __call__(
        self,
        partitions: int = 1,
        config: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> str:
        name = f"{self._prefix}-{uuid.uuid4().hex[:8]}"
        topic = NewTopic(
            name, num_partitions=partitions, replication_factor=1, config=dict(config or {})
        )
        self._admin.create_topics([topic], request_timeout=timeout)[name].result(timeout)
        self.created.append(name)
        self._wait_for_leaders(name, partitions, time.monotonic() + timeout)
        return name

    def _wait_for_leaders(self, name: str, partitions: int, deadline: float) -> None:
        # CreateTopics returns once the controller committed the topic; the broker may serve its
        # metadata a moment later. Producers would retry, but assertions on partitions would not.
        while True:
            meta = self._admin.list_topics(topic=name, timeout=5).topics.get(name)
            if (
                meta is not None
                and meta.error is None
                and len(meta.partitions) == partitions
                and all(p.leader >= 0 for p in meta.partitions.values())
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {name} has no leader for every partition")
            time.sleep(0.05)

    def delete_all(self, timeout: float = 30.0) -> None:
        if not self.created:
            return
        futures = self._admin.delete_topics(self.created, request_timeout=timeout)
        for future in futures.values():
            future.result(timeout)
        self.created.clear()


def main() -> None:
    """Keep one broker up until Ctrl-C; prints the bootstrap address first."""
    logging.basicConfig(level=logging.INFO)
    with KafkaBroker() as broker:
        print(broker.bootstrap_servers, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            broker.wait()


if __name__ == "__main__":
    main()
