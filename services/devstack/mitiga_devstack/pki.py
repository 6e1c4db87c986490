"""Certificates and keys for the test control plane: a CA, the API server's serving certificate, client
certificates per component, and the service-account signing key."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    from pathlib import Path


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(key: rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


class Pki:
    """Writes everything under ``folder``; ``cert(name)`` / ``key(name)`` give the paths."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._ca_key = _key()
        now = dt.datetime.now(dt.UTC)
        self._ca = (x509.CertificateBuilder().subject_name(_name("mitiga-test-ca")).issuer_name(_name("mitiga-test-ca"))
                    .public_key(self._ca_key.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
                    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                    .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                 content_commitment=False, key_encipherment=False,
                                                 data_encipherment=False, key_agreement=False, encipher_only=False,
                                                 decipher_only=False), critical=True)
                    .sign(self._ca_key, hashes.SHA256()))
        self.cert("ca").write_bytes(self._ca.public_bytes(serialization.Encoding.PEM))
        _write_key(self._ca_key, self.key("ca"))
        sa = _key()
        _write_key(sa, self.key("sa"))
        (folder / "sa.pub").write_bytes(sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    def cert(self, name: str) -> Path:
        return self.folder / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.folder / f"{name}.key"

    def issue(self, name: str, cn: str, *, org: str | None = None, server: bool = False,
              hosts: tuple[str, ...] = ()) -> None:
        key = _key()
        now = dt.datetime.now(dt.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (x509.CertificateBuilder().subject_name(_name(cn, org)).issuer_name(self._ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if hosts:
            alt: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    alt.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = builder.sign(self._ca_key, hashes.SHA256())
        self.cert(name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, self.key(name))

    def kubeconfig(self, name: str, server: str, path: Path) -> Path:
        """A kubeconfig that authenticates with ``name``'s client certificate."""
        import yaml

        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "mitiga-test",
            "clusters": [{"name": "mitiga-test", "cluster": {"server": server,
                                                             "certificate-authority": str(self.cert("ca"))}}],
            "users": [{"name": name, "user": {"client-certificate": str(self.cert(name)),
                                              "client-key": str(self.key(name))}}],
            "contexts": [{"name": "mitiga-test", "context": {"cluster": "mitiga-test", "user": name}}],
        }
        path.write_text(yaml.safe_dump(config))
        return path
