"""The control plane's certificates and the files that use them: PKI, kubeconfig, TLS context.

A CA, the API server's serving certificate (localhost, 127.0.0.1), an admin client certificate
(``system:masters``) and the service-account key pair, all in ``<run folder>/certs``; the
kubeconfig embeds the CA and the admin's certificate and key.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import ssl
from pathlib import Path

__all__ = ["ssl_context", "write_kubeconfig", "write_pki"]


def write_pki(certs: Path) -> None:
    """A CA, the API server's serving cert, an admin client cert and the service-account keys."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    certs.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = dt.datetime.now(dt.UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    def save_key(k: ec.EllipticCurvePrivateKey, filename: str) -> None:
        data = k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path = certs / filename
        path.write_bytes(data)
        path.chmod(0o600)

    def save_cert(c: x509.Certificate, filename: str) -> None:
        (certs / filename).write_bytes(c.public_bytes(serialization.Encoding.PEM))

    ca_key = key()
    ca_name = name("ansible-bridge-controlplane-ca")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def issue(
        cn: str, org: str | None, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        k = key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn, org))
            .issuer_name(ca_name)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), k

    from cryptography.x509.oid import ExtendedKeyUsageOID

    serving, serving_key = issue(
        "kube-apiserver",
        None,
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes.default.svc"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ],
    )
    admin, admin_key = issue("admin", "system:masters", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    sa_key = key()

    save_cert(ca, "ca.crt")
    save_key(ca_key, "ca.key")
    save_cert(serving, "apiserver.crt")
    save_key(serving_key, "apiserver.key")
    save_cert(admin, "admin.crt")
    save_key(admin_key, "admin.key")
    save_key(sa_key, "sa.key")
    (certs / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(kubeconfig: Path, server: str, certs: Path) -> None:
    """A kubeconfig (mode 0600) for ``server`` as the admin, with the certificates in it."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "ansible-bridge",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": _b64(certs / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate-data": _b64(certs / "admin.crt"),
                    "client-key-data": _b64(certs / "admin.key"),
                },
            }
        ],
        "contexts": [
            {
                "name": "ansible-bridge",
                "context": {"cluster": "ansible-bridge", "user": "admin", "namespace": "default"},
            }
        ],
        "current-context": "ansible-bridge",
    }
    kubeconfig.write_text(json.dumps(config, indent=2))
    kubeconfig.chmod(0o600)


def ssl_context(run_dir: Path) -> ssl.SSLContext:
    """A TLS context that trusts the plane's CA and presents the admin client certificate."""
    certs = run_dir / "certs"
    ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    ctx.load_cert_chain(str(certs / "admin.crt"), str(certs / "admin.key"))
    return ctx
