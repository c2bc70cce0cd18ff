"""A local CA and a server certificate for 127.0.0.1, localhost and ::1, made once with trustme and reused."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme

HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class CertPaths:
    ca: Path
    cert: Path
    key: Path


def ensure_certs(cert_dir: Path | str) -> CertPaths:
    """``ca.pem``, ``server.pem`` and ``server-key.pem`` in ``cert_dir`` (created at first use)."""
    folder = Path(cert_dir).resolve()
    paths = CertPaths(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    if paths.ca.exists() and paths.cert.exists() and paths.key.exists():
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="jitportal emulator", organization_unit_name="local CA")
    server = ca.issue_cert(*HOSTS)
    ca.cert_pem.write_to_path(str(paths.ca))
    server.cert_chain_pems[0].write_to_path(str(paths.cert))
    for extra in server.cert_chain_pems[1:]:
        with paths.cert.open("ab") as handle:
            handle.write(extra.bytes())
    server.private_key_pem.write_to_path(str(paths.key))
    paths.key.chmod(0o600)
    return paths
