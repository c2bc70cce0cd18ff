"""The one outbound seam of notifications: signing, the address guard, and the webhook POST.

Every webhook request goes through ``post_signed``: an explicit timeout, no redirects followed, and an answer
classified as delivered, worth retrying (network errors, 408, 429, 5xx; with the receiver's Retry-After) or
refused for good (other 3xx/4xx, a blocked address).
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests
from django.conf import settings

RETRYABLE_STATUSES = {408, 425, 429, 500, 502, 503, 504}
USER_AGENT = "jitportal-webhooks/1"


class BlockedAddress(ValueError):
    """The URL is not allowed: plain http, or a host that resolves to a private address (SSRF guard)."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with ``secret`` over ``"<timestamp>.<raw body>"``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    return hmac.compare_digest(signature(secret, timestamp, body), header or "")


def _is_private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def check_url(url: str, *, resolve: bool = True) -> None:
    """Raise ``BlockedAddress`` unless ``url`` may be called under the current settings."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise BlockedAddress("The URL must be an absolute https:// URL.")
    if parts.scheme == "http" and not settings.WEBHOOK_ALLOW_HTTP:
        raise BlockedAddress("Webhook URLs must use https.")
    if settings.WEBHOOK_ALLOW_PRIVATE or not resolve:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise BlockedAddress(f"The host {parts.hostname} cannot be resolved ({exc}).") from exc
    private = sorted({info[4][0] for info in infos if _is_private(info[4][0])})
    if private:
        raise BlockedAddress(f"The host {parts.hostname} resolves to a private or local address "
                             f"({', '.join(private)}); only public receivers are allowed.")


@dataclass(frozen=True)
class Answer:
    """How a POST went: delivered, or the error, whether a retry makes sense, and when the receiver asked for it."""

    delivered: bool
    status: int | None = None
    error: str = ""
    retryable: bool = False
    retry_after: float | None = None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def encode(body: dict) -> bytes:
    """The exact bytes sent (and signed)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def post_signed(*, url: str, secret: str, event: str, delivery_id: str, body: dict) -> Answer:
    """POST ``body`` as signed JSON to ``url``; never raises for what the network or the receiver did."""
    try:
        check_url(url)
    except BlockedAddress as exc:
        return Answer(False, error=f"Blocked: {exc}")
    raw = encode(body)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Jitportal-Event": event,
        "X-Jitportal-Delivery": delivery_id,
        "X-Jitportal-Timestamp": timestamp,
        "X-Jitportal-Signature": signature(secret, timestamp, raw),
    }
    try:
        response = requests.post(url, data=raw, headers=headers, timeout=settings.NOTIFY_WEBHOOK_TIMEOUT_SECONDS,
                                 allow_redirects=False)
    except requests.RequestException as exc:
        return Answer(False, error=f"{type(exc).__name__}: {exc}"[:1000], retryable=True)
    status = response.status_code
    if 200 <= status < 300:
        return Answer(True, status=status)
    excerpt = response.text[:300].strip()
    if 300 <= status < 400:
        error = f"HTTP {status}: redirect to {response.headers.get('Location', '?')} not followed"
    else:
        error = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
    return Answer(False, status=status, error=error, retryable=status in RETRYABLE_STATUSES,
                  retry_after=_retry_after(response.headers.get("Retry-After")) if status in (429, 503) else None)
