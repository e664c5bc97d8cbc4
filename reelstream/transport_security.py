"""TLS credentials of this process: mutual TLS between Reelstream processes.

Every server asks for and verifies a client certificate signed by the development CA
(`make certs`), and every client presents its own and verifies the server's. The subject CN
of a certificate is the caller's identity that servers authorise by
(reelstream/caller_policy.py). Plaintext is a development option, on only with
`REELSTREAM_PLAINTEXT=1`; without it and without certificates a process refuses to start
and says how to fix it.

This process's identity is `REELSTREAM_IDENTITY` when set, else the tier's own name, which
the service shell declares (`use_identity`) before the tier opens any channel.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import grpc

from reelstream.security_settings import SecuritySettings, security_settings


class TransportSecurityError(RuntimeError):
    """The certificates this process needs are missing or unreadable."""


@dataclass(frozen=True)
class IdentityFiles:
    """The PEM bytes one identity needs: the CA to trust, its key and certificate."""

    ca: bytes
    key: bytes
    cert: bytes


_tier_identity = ""


def use_identity(tier_identity: str) -> str:
    """Declares this process's tier (its default identity); returns the identity in force."""
    global _tier_identity
    _tier_identity = tier_identity
    return process_identity()


def process_identity(settings: SecuritySettings | None = None) -> str:
    """`REELSTREAM_IDENTITY`, else the tier declared by `use_identity`, else ''."""
    return (settings or security_settings()).identity or _tier_identity


@functools.cache
def load_identity(certs_dir: Path, identity: str) -> IdentityFiles:
    """Reads the CA and `identity`'s key pair from `certs_dir`.

    Raises:
        TransportSecurityError: a file is missing, with the two ways out.
    """
    if not identity:
        raise TransportSecurityError(
            "TLS needs this process's identity: set REELSTREAM_IDENTITY to the name of a "
            f"certificate in {certs_dir} (or REELSTREAM_PLAINTEXT=1 in development)"
        )
    files = [certs_dir / "ca.pem", certs_dir / f"{identity}.key", certs_dir / f"{identity}.pem"]
    try:
        ca, key, cert = (path.read_bytes() for path in files)
    except OSError as exc:
        raise TransportSecurityError(
            f"no certificate for identity {identity!r}: {exc.strerror}: {exc.filename}. "
            "Run 'make certs' (or point REELSTREAM_CERTS_DIR at them), or set "
            "REELSTREAM_PLAINTEXT=1 to run without TLS (development only)"
        ) from exc
    return IdentityFiles(ca=ca, key=key, cert=cert)


def server_credentials(
    identity: str, settings: SecuritySettings | None = None
) -> grpc.ServerCredentials | None:
    """Credentials of a server that requires CA-signed client certificates; None when
    plaintext is switched on."""
    settings = settings or security_settings()
    if settings.plaintext:
        return None
    files = load_identity(settings.certs_path, identity)
    return grpc.ssl_server_credentials(
        [(files.key, files.cert)], root_certificates=files.ca, require_client_auth=True
    )


def channel_credentials(
    identity: str | None = None, settings: SecuritySettings | None = None
) -> grpc.ChannelCredentials | None:
    """Credentials of a client presenting `identity` (default: this process's); None when
    plaintext is switched on."""
    settings = settings or security_settings()
    if settings.plaintext:
        return None
    files = load_identity(settings.certs_path, identity or process_identity(settings))
    return grpc.ssl_channel_credentials(
        root_certificates=files.ca, private_key=files.key, certificate_chain=files.cert
    )
