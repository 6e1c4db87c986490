"""A throwaway certificate authority and a server certificate for a local broker's TLS listener (OpenSSL's CLI,
keys unencrypted: a test cluster's, never a deployment's)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    """The CA certificate clients trust (``MITIGA_KAFKA_SSL_CAFILE``)."""
    keystore: Path
    """The server's private key and certificate chain in one PEM file (Kafka's ``ssl.keystore.type=PEM``)."""


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: S603, S607 - fixed arguments


def server_certificate(folder: Path, host: str = "127.0.0.1", days: int = 7) -> TlsFiles:
    """A CA and a certificate for ``host`` (an IP address and ``localhost`` in its subject alternative names)
    signed by it, in ``folder``; made once, reused after."""
    folder.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(folder / "ca.pem", folder / "server-keystore.pem")
    if files.ca.exists() and files.keystore.exists():
        return files
    ca_key, key, csr, cert = (folder / n for n in ("ca.key", "server.key", "server.csr", "server.crt"))
    names = folder / "san.cnf"
    names.write_text(f"subjectAltName=IP:{host},DNS:localhost\n")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(files.ca),
             "-days", str(days), "-subj", "/CN=mitiga test CA")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(files.ca), "-CAkey", str(ca_key), "-CAcreateserial",
             "-out", str(cert), "-days", str(days), "-extfile", str(names))
    files.keystore.write_text(key.read_text() + cert.read_text() + files.ca.read_text())
    return files
