"""The tenant-independent signing key of the emulated Entra ID, kept in the certificate folder."""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_FILE = "entra-signing-key.pem"


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    private_pem: bytes
    public_pem: bytes
    kid: str
    jwk: dict


def load_or_create(cert_dir: Path) -> SigningKey:
    """Load the RSA key from ``cert_dir``, creating it at first start."""
    path = Path(cert_dir) / KEY_FILE
    if path.exists():
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        path.chmod(0o600)
    public = private.public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    kid = base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:15]).decode()
    numbers = public.public_numbers()
    jwk = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
           "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}
    private_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    public_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return SigningKey(private_pem, public_pem, kid, jwk)
