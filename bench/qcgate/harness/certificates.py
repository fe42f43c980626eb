"""Throw-away TLS certificates for tests: a CA and a server (or client) certificate it signed, made
with the system's ``openssl`` (the same tool a site would use), valid for 127.0.0.1 and localhost."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENSSL = "/usr/bin/openssl"


@dataclass(frozen=True)
class Certificate:
    cert_file: Path
    key_file: Path


def _run(*arguments: str) -> None:
    subprocess.run([OPENSSL, *arguments], check=True, capture_output=True, timeout=60)


def make_ca(directory: Path) -> Certificate:
    directory.mkdir(parents=True, exist_ok=True)
    ca = Certificate(directory / "ca.pem", directory / "ca.key")
    _run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=qcgate test CA",
         "-keyout", str(ca.key_file), "-out", str(ca.cert_file))  # fmt: skip
    return ca


def make_signed(directory: Path, ca: Certificate, name: str) -> Certificate:
    """A certificate for ``name`` (also valid for 127.0.0.1 and localhost), signed by ``ca``."""
    signed = Certificate(directory / f"{name}.pem", directory / f"{name}.key")
    request, extensions = directory / f"{name}.csr", directory / f"{name}.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", str(signed.key_file),
         "-out", str(request))  # fmt: skip
    _run("x509", "-req", "-in", str(request), "-CA", str(ca.cert_file), "-CAkey", str(ca.key_file),
         "-CAcreateserial", "-days", "2", "-extfile", str(extensions),
         "-out", str(signed.cert_file))  # fmt: skip
    return signed
