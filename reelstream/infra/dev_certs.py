"""`make certs`: a development CA and one certificate per identity, made with openssl.

Layout under `$REELSTREAM_CERTS_DIR` (default `$REELSTREAM_VAR_DIR/certs`, git-ignored):
`ca.pem` + `ca.key` (the CA), and `<identity>.pem` + `<identity>.key` for each name of
`IDENTITIES`. The identity is the certificate's subject CN, which servers read from the peer
certificate to authorise calls (reelstream/caller_policy.py). Every certificate serves both
ends of a connection (extendedKeyUsage serverAuth and clientAuth) and names the loopback
host (DNS:localhost, IP:127.0.0.1) plus `REELSTREAM_CERT_HOSTS` (comma-separated DNS names
or IPs) so that clients verify the server they dial.

Idempotent: an existing certificate that the current CA signed is kept; a missing or stale
one is made again (all of them when the CA itself is new). Files appear atomically (written
beside, then renamed), private keys readable by their owner only.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from reelstream.security_settings import security_settings

# Services present these both as servers and as clients of each other; `moderator` is the
# review console / CLI, `admin` operators' tools (probes, status), `app` viewers' and
# creators' apps and the load generator (see docs/security.md).
SERVICE_IDENTITIES = ("edge", "counter", "origin", "spam", "moderation")
CLIENT_IDENTITIES = ("moderator", "admin", "app")
IDENTITIES = SERVICE_IDENTITIES + CLIENT_IDENTITIES

CA_DAYS = 3650
CERT_DAYS = 825
CERT_HOSTS_ENV = "REELSTREAM_CERT_HOSTS"


class CertificateError(RuntimeError):
    """openssl is missing or failed."""


def default_certs_dir() -> Path:
    """`$REELSTREAM_CERTS_DIR`, by default `var/certs`."""
    return security_settings().certs_path


def _openssl(*arguments: str) -> None:
    try:
        result = subprocess.run(
            ["openssl", *arguments], capture_output=True, text=True, check=False, timeout=60
        )
    except FileNotFoundError as exc:
        raise CertificateError("openssl not found: run 'make system-deps'") from exc
    if result.returncode != 0:
        raise CertificateError(f"openssl {arguments[0]} failed: {result.stderr.strip()}")


def _subject_alt_names(identity: str, extra_hosts: Sequence[str]) -> str:
    names = [f"DNS:{identity}", "DNS:localhost", "IP:127.0.0.1"]
    for host in extra_hosts:
        try:
            ipaddress.ip_address(host)
            names.append(f"IP:{host}")
        except ValueError:
            names.append(f"DNS:{host}")
    return ",".join(dict.fromkeys(names))


def _signed_by(cert: Path, ca: Path) -> bool:
    try:
        _openssl("verify", "-CAfile", str(ca), str(cert))
    except CertificateError:
        return False
    return True


def _make_ca(directory: Path) -> None:
    key, cert = directory / "ca.key", directory / "ca.pem"
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        new_key, new_cert = Path(scratch) / "ca.key", Path(scratch) / "ca.pem"
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(new_key), "-out", str(new_cert), "-days", str(CA_DAYS),
            "-subj", "/O=Reelstream/CN=Reelstream development CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        new_key.chmod(0o600)
        new_key.replace(key)
        new_cert.replace(cert)


def _make_identity(directory: Path, identity: str, extra_hosts: Sequence[str]) -> None:
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        work = Path(scratch)
        key, request, cert = work / "id.key", work / "id.csr", work / "id.pem"
        extensions = work / "ext.cnf"
        extensions.write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
            f"subjectAltName={_subject_alt_names(identity, extra_hosts)}\n"
        )
        _openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(request), "-subj", f"/O=Reelstream/CN={identity}",
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(request), "-CA", str(directory / "ca.pem"),
            "-CAkey", str(directory / "ca.key"), "-set_serial", str(secrets.randbits(63)),
            "-days", str(CERT_DAYS), "-extfile", str(extensions), "-out", str(cert),
        )  # fmt: skip
        key.chmod(0o600)
        key.replace(directory / f"{identity}.key")
        cert.replace(directory / f"{identity}.pem")


def ensure_certificates(
    directory: Path | None = None,
    identities: Sequence[str] = IDENTITIES,
    extra_hosts: Sequence[str] = (),
) -> list[str]:
    """Makes the CA and the certificates of `identities` that are missing or stale.

    Returns:
        The identities whose certificate was (re)made.
    """
    target = directory or default_certs_dir()
    target.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        target.chmod(0o700)
    ca = target / "ca.pem"
    if not (ca.exists() and (target / "ca.key").exists()):
        _make_ca(target)
    made = []
    for identity in identities:
        cert, key = target / f"{identity}.pem", target / f"{identity}.key"
        if cert.exists() and key.exists() and _signed_by(cert, ca):
            continue
        _make_identity(target, identity, extra_hosts)
        made.append(identity)
    return made


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=None, help="default: $REELSTREAM_CERTS_DIR")
    arguments = parser.parse_args(argv)
    hosts = [h.strip() for h in os.environ.get(CERT_HOSTS_ENV, "").split(",") if h.strip()]
    directory = arguments.dir or default_certs_dir()
    try:
        made = ensure_certificates(directory, extra_hosts=hosts)
    except CertificateError as exc:
        print(f"make certs: {exc}", file=sys.stderr)
        return 1
    print(
        f"certificates in {directory}: "
        + (f"made {', '.join(made)}" if made else "all present and signed by ca.pem")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
