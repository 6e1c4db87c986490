"""The real dependencies, each a :class:`ServerProcess` on 127.0.0.1 with its data in a folder of its own."""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.error import URLError
from urllib.request import urlopen

from mitiga_devstack.process import ServerError, ServerProcess, free_port, run_script
from mitiga_devstack.tls import server_certificate

if TYPE_CHECKING:
    from collections.abc import Sequence

KAFKA_HEAP = "-Xmx512m"


def _http_ok(url: str) -> bool:
    try:
        with urlopen(url, timeout=1) as response:  # noqa: S310 - loopback URLs built here
            return bool(response.status == 200)
    except (URLError, OSError):
        return False


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        run_script("install-debs.sh")
        path = shutil.which(name)
    if path is None:
        raise ServerError(f"{name} is not installed and scripts/install-debs.sh did not install it")
    return path


class KafkaServer(ServerProcess):
    """Apache Kafka in KRaft mode: one combined broker and controller, jars from Maven Central."""

    name = "kafka"
    start_timeout_s = 120.0

    SASL_USER = "mitiga"
    SASL_PASSWORD = "mitiga-dev-password"  # noqa: S105 - a local test broker's, not a secret
    """A second listener authenticates with SASL/PLAIN as this user (for the clients' SASL settings); a third
    takes the same over TLS, its certificate signed by a CA of its own (:attr:`tls_ca`)."""

    def __init__(self, data_dir: Path, port: int | None = None, controller_port: int | None = None,
                 host: str = "127.0.0.1") -> None:
        super().__init__(data_dir, port, host)
        self.controller_port = controller_port or free_port()
        self.sasl_port = free_port()
        self.tls_port = free_port()
        self.lib = Path(run_script("install-kafka.sh"))

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def tls_bootstrap(self) -> str:
        """SASL_SSL: SASL/PLAIN over TLS."""
        return f"127.0.0.1:{self.tls_port}"

    @property
    def tls_ca(self) -> Path:
        """The CA that signed the TLS listener's certificate (clients' ``MITIGA_KAFKA_SSL_CAFILE``)."""
        return self.data_dir / "tls" / "ca.pem"

    def prepare(self) -> None:
        props = self.data_dir / "server.properties"
        if props.exists():
            return
        tls = server_certificate(self.data_dir / "tls")
        jaas = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'user_{self.SASL_USER}="{self.SASL_PASSWORD}";')
        authenticated = f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port},SASL_SSL://127.0.0.1:{self.tls_port}"
        props.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://{self.host}:{self.port},{authenticated},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://{self.host}:{self.port},{authenticated}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,"
            "CONTROLLER:PLAINTEXT",
            "sasl.enabled.mechanisms=PLAIN",
            f"listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}",
            f"listener.name.sasl_ssl.plain.sasl.jaas.config={jaas}",
            "listener.name.sasl_ssl.ssl.keystore.type=PEM",
            f"listener.name.sasl_ssl.ssl.keystore.location={tls.keystore}",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={self.data_dir / 'logs'}",
            "num.partitions=3",
            # one broker: the internal topics cannot have more replicas than that
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "",
        ]))
        (self.data_dir / "log4j.properties").write_text("\n".join([  # Kafka 3 (reload4j)
            "log4j.rootLogger=WARN, stdout",
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender",
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout",
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n",
            "log4j.logger.kafka.server.KafkaServer=INFO",
            "",
        ]))
        (self.data_dir / "log4j2.properties").write_text("\n".join([  # Kafka 4 (log4j 2)
            "rootLogger.level=WARN",
            "rootLogger.appenderRef.stdout.ref=stdout",
            "appender.stdout.type=Console",
            "appender.stdout.name=stdout",
            "appender.stdout.layout.type=PatternLayout",
            "appender.stdout.layout.pattern=[%d] %p %m (%c)%n",
            "logger.server.name=kafka.server.KafkaServer",
            "logger.server.level=INFO",
            "",
        ]))
        cluster_id = "-"
        while cluster_id.startswith("-"):  # the tool would read a leading dash as an option
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        done = subprocess.run(  # noqa: S603
            [*self._java(), "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)],
            capture_output=True, text=True, check=False)
        if done.returncode != 0:
            props.unlink()
            raise ServerError(f"kafka storage format failed: {done.stdout}{done.stderr}")

    def _java(self) -> list[str]:
        return [_binary("java"), KAFKA_HEAP, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                f"-Dlog4j.configuration=file:{self.data_dir / 'log4j.properties'}",
                f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}", "-cp", f"{self.lib}/*"]

    def command(self) -> Sequence[str]:
        return [*self._java(), "kafka.Kafka", str(self.data_dir / "server.properties")]

    def ready(self) -> bool:
        if not super().ready():
            return False
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
        except KafkaError:
            return False
        try:
            admin.list_topics()
            return True
        except KafkaError:
            return False
        finally:
            admin.close()


class RedisServer(ServerProcess):
    """Redis with AOF persistence (fsync on every write), data in ``data_dir``."""

    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def command(self) -> Sequence[str]:
        return [_binary("redis-server"), "--bind", self.host, "--port", str(self.port), "--dir", str(self.data_dir),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
                "--protected-mode", "no", "--logfile", ""]

    def ready(self) -> bool:
        if not super().ready():
            return False
        import redis

        try:
            client = redis.Redis.from_url(self.url, socket_timeout=1)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except redis.RedisError:
            return False


class _ConfiguredHttpServer(ServerProcess):
    """A Prometheus-family server: a configuration file, an HTTP API, ready when ``/-/ready`` answers."""

    def __init__(self, data_dir: Path, config: Path, port: int | None = None) -> None:
        super().__init__(data_dir, port)
        self.config = config

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        return super().ready() and _http_ok(f"{self.url}/-/ready")


class PrometheusServer(_ConfiguredHttpServer):
    """Prometheus with a given configuration file (its rule files are referenced from it)."""

    name = "prometheus"

    def command(self) -> Sequence[str]:
        return [_binary("prometheus"), f"--config.file={self.config}", f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle", "--log.level=warn"]


class AlertmanagerServer(_ConfiguredHttpServer):
    """Alertmanager, one instance (no cluster), with a given configuration file."""

    name = "alertmanager"

    def command(self) -> Sequence[str]:
        return [_binary("prometheus-alertmanager"), f"--config.file={self.config}",
                f"--storage.path={self.data_dir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=", "--log.level=warn"]
