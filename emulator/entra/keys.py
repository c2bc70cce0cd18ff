"""The signing key of the emulated Entra ID: one RSA key per certificate folder, made at first start."""
from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_FILE = "entra-signing-key.pem"
_loaded: dict[str, SigningKey] = {}
_loading = threading.Lock()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class SigningKey:
    """The private key (PEM and loaded), its public half, the ``kid`` derived from it and its JWK."""

    private_pem: bytes
    public_pem: bytes
    kid: str
    jwk: dict
    private_key: rsa.RSAPrivateKey
    public_key: rsa.RSAPublicKey


def _create(path: Path) -> None:
    """Write a new key to ``path`` unless another process got there first (the first writer wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".entra-key-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        os.chmod(tmp, 0o600)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def _from_pem(pem: bytes) -> SigningKey:
    private = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ValueError(f"{KEY_FILE} does not hold an RSA private key")
    public = private.public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    kid = _b64url(hashlib.sha256(der).digest()[:20])
    numbers = public.public_numbers()
    jwk = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
           "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}
    public_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return SigningKey(pem, public_pem, kid, jwk, private, public)


def load_or_create(cert_dir: Path | str) -> SigningKey:
    """The key kept in ``cert_dir/entra-signing-key.pem``, created there at first use and reused after."""
    path = Path(cert_dir).resolve() / KEY_FILE
    with _loading:
        if not path.exists():
            _create(path)
        stamp = f"{path}@{path.stat().st_mtime_ns}"
        key = _loaded.get(stamp)
        if key is None:
            key = _loaded[stamp] = _from_pem(path.read_bytes())
        return key
