"""The one outbound seam of notifications: signing, the address guard, and the webhook POST.

Every webhook request goes through ``post_signed``: an explicit timeout, no redirects followed, and an answer
classified as delivered, worth retrying (network errors, 408, 429, 5xx; with the receiver's Retry-After) or
refused for good (other 3xx/4xx, a blocked address).

The host name is resolved once; every address it resolves to is checked, and the connection goes to a checked
address (never to a second answer of the resolver, so DNS rebinding cannot reach inside), while the Host header,
TLS SNI and the certificate check keep the URL's host name.

Webhook URLs often carry their credential (Slack's and Teams' incoming webhooks, in the path or the query), and
``requests``' errors name the URL: every error ``post_signed`` answers names the receiver by its scheme, host and
port only (``origin``), with the URL's path, query and user info taken out (``redact``).
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from django.conf import settings
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.utils import requote_uri
from urllib3.exceptions import HTTPError, NewConnectionError

RETRYABLE_STATUSES = {408, 425, 429, 500, 502, 503, 504}
USER_AGENT = "jitportal-webhooks/1"
DEFAULT_PORTS = {"https": 443, "http": 80}
MAX_EXCERPT_BYTES = 1024  # of an error answer's body, kept for the deliveries page; the rest is never read
MAX_ADDRESSES_TRIED = 4  # of one host name's checked addresses, in the resolver's order, until one connects

# IPv6 ranges that carry an IPv4 address in their last 32 bits (NAT64 well-known prefix, RFC 6052; the
# deprecated IPv4-compatible form) and the local-use NAT64 prefix (RFC 8215), never a public receiver.
NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")


REDACTED = "…"
# urllib3's "Max retries exceeded with url: /path?query (Caused by ...)": whatever URL a message names there.
_URL_IN_MESSAGE = re.compile(r"(\burl: )\S+", re.IGNORECASE)


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: how errors name a webhook (no user info, path, query or fragment)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "the webhook's URL"
    if not parts.scheme or not host:
        return "the webhook's URL"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def masked(url: str) -> str:
    """``url`` as pages show a stored webhook: its ``origin``, and ``/…`` for whatever follows the host (Slack and
    Teams incoming webhooks carry their credential in the path or query; user info is left out as well)."""
    shown = origin(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return shown
    if shown == "the webhook's URL":
        return shown
    return shown + (f"/{REDACTED}" if parts.path.strip("/") or parts.query or parts.fragment else "/")


def _token_like(piece: str) -> bool:
    """A path segment or query value that looks like a credential (long, or digits among its characters), not
    a word such as ``services`` or ``triggers`` that an error message may use too."""
    return len(piece) >= 12 or (len(piece) >= 6 and any(char.isdigit() for char in piece))


def _secret_parts(url: str) -> list[str]:
    """The pieces of ``url`` that may hold a credential, as written, as sent (requoted) and unquoted; longest
    first, so a whole path goes before the segments in it."""
    pieces: set[str] = set()
    for form in {url, requote_uri(url), unquote(url)}:
        try:
            parts = urlsplit(form)
            password = parts.password or ""
        except ValueError:
            pieces.add(form)
            continue
        query = f"?{parts.query}" if parts.query else ""
        pieces.update({parts.path + query, parts.path, parts.query, parts.fragment, parts.netloc.rpartition("@")[0]})
        if len(password) >= 4:
            pieces.add(password)
        pieces.update(segment for segment in parts.path.split("/") if _token_like(segment))
        pieces.update(value for pair in parts.query.split("&") for value in pair.split("=") if _token_like(value))
    return sorted((piece for piece in pieces if len(piece) > 1), key=len, reverse=True)


def redact(text: str, url: str) -> str:
    """``text`` with every URL urllib3 names and every secret-bearing part of ``url`` taken out; the URL itself
    becomes its ``origin``."""
    text = _URL_IN_MESSAGE.sub(lambda match: match.group(1) + REDACTED, text)
    for form in {url, requote_uri(url), unquote(url)}:
        text = text.replace(form, origin(url))
    for piece in _secret_parts(url):
        text = text.replace(piece, REDACTED)
    return text


class BlockedAddress(ValueError):
    """The URL is not allowed: plain http, or a host that resolves to a private address (SSRF guard)."""


class Unresolvable(BlockedAddress):
    """The host name does not resolve (now): refused by ``check_url``, worth a retry when delivering."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with ``secret`` over ``"<timestamp>.<raw body>"``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    return hmac.compare_digest(signature(secret, timestamp, body), header or "")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address stands for (mapped, 6to4, both Teredo ends, NAT64, IPv4-compatible)."""
    inner = [address for address in (ip.ipv4_mapped, ip.sixtofour) if address is not None]
    if ip.teredo is not None:
        inner.extend(ip.teredo)  # (server, client)
    if ip in NAT64_WELL_KNOWN or ip in IPV4_COMPATIBLE:
        inner.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return inner


def _is_private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in NAT64_LOCAL_USE:
            return True
        candidates.extend(_embedded_ipv4(ip))
    return any(not candidate.is_global or candidate.is_multicast for candidate in candidates)


def _resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, once each (the only lookup of a POST)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Target:
    """Where a checked URL goes: its scheme, host name and port, and the checked addresses of that host."""

    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def _parse(url: str) -> tuple[str, str, int]:
    """Scheme, host name and port of an allowed URL, or ``BlockedAddress`` with the reason."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # a malformed [IPv6] host
        raise BlockedAddress(f"The URL is not valid ({exc}).") from exc
    try:
        port = parts.port
    except ValueError as exc:  # above 65535, or not a number
        raise BlockedAddress(f"The URL's port is not valid ({exc}); a port must be a number from 1 to 65535.") from exc
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise BlockedAddress("The URL must be an absolute https:// URL.")
    if parts.scheme == "http" and not settings.WEBHOOK_ALLOW_HTTP:
        raise BlockedAddress("Webhook URLs must use https.")
    if port == 0:
        raise BlockedAddress("The URL's port is not valid (0); a port must be a number from 1 to 65535.")
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def _checked_addresses(host: str, port: int) -> tuple[str, ...]:
    """Resolve ``host`` once; refuse it when any address is private (unless the settings allow private ones)."""
    try:
        addresses = _resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise Unresolvable(f"The host {host} cannot be resolved ({exc}).") from exc
    if not addresses:
        raise Unresolvable(f"The host {host} cannot be resolved (no address).")
    if not settings.WEBHOOK_ALLOW_PRIVATE:
        private = sorted({address for address in addresses if _is_private(address)})
        if private:
            raise BlockedAddress(f"The host {host} resolves to a private or local address "
                                 f"({', '.join(private)}); only public receivers are allowed.")
    return tuple(addresses)


def check_url(url: str, *, resolve: bool = True) -> None:
    """Raise ``BlockedAddress`` unless ``url`` may be called under the current settings."""
    _scheme, host, port = _parse(url)
    if settings.WEBHOOK_ALLOW_PRIVATE or not resolve:
        return
    _checked_addresses(host, port)


def resolve_target(url: str) -> Target:
    """Check ``url`` and resolve its host once: the addresses a POST may connect to (``BlockedAddress`` if none)."""
    scheme, host, port = _parse(url)
    return Target(scheme, host, port, _checked_addresses(host, port))


class PinnedAdapter(HTTPAdapter):
    """Sends to one checked address; the URL's host name stays in the Host header, SNI and certificate check.

    No proxy is used (a proxy would resolve the name again); like any adapter, nothing is retried.
    """

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address
        self.sockets: list[socket.socket] = []
        self.cut_off = False

    def get_connection_with_tls_context(self, request: PreparedRequest, verify: bool | str,
                                        proxies: dict[str, str] | None = None,
                                        cert: str | tuple[str, str] | None = None) -> Any:
        """The pool to the pinned address, whose connections are kept in ``sockets`` once made (``cut``)."""
        pool = super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)
        base, sockets = pool.ConnectionCls, self.sockets
        if not getattr(base, "tracked", False):
            class Tracked(base):  # type: ignore[valid-type, misc]
                tracked = True

                def connect(self) -> None:
                    super().connect()
                    sockets.append(self.sock)

            pool.ConnectionCls = Tracked
        return pool

    def cut(self) -> None:
        """End the exchange now, from another thread (``_send_pinned``'s limit): a blocked read returns at once."""
        self.cut_off = True
        for sock in self.sockets:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    def build_connection_pool_key_attributes(self, request: PreparedRequest, verify: bool | str,
                                             cert: str | tuple[str, str] | None = None,
                                             ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The pool goes to the pinned address; for https, SNI and the certificate check use the URL's host."""
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        host = host_params["host"]
        host_params["host"] = self.address
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = host
            pool_kwargs["assert_hostname"] = host.rstrip(".")
        return host_params, pool_kwargs

    def add_headers(self, request: PreparedRequest, **kwargs: Any) -> None:
        """``Host`` as the URL says (urllib3 would otherwise send the pinned address)."""
        parts = urlsplit(request.url)
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        if parts.port and parts.port != DEFAULT_PORTS.get(parts.scheme):
            host = f"{host}:{parts.port}"
        request.headers["Host"] = host

    def send(self, request: PreparedRequest, stream: bool = False,
             timeout: float | tuple[float, float] | None = None, verify: bool | str = True,
             cert: str | tuple[str, str] | None = None, proxies: dict[str, str] | None = None) -> Response:
        """Send straight to the pinned address, whatever proxies the environment names."""
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=None)


def _not_connected(exc: requests.RequestException) -> bool:
    """Whether the connection itself failed (nothing was sent), so another address of the host may be tried."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


@dataclass(frozen=True)
class Reply:
    """A receiver's answer: its status, headers and the start of its body (for an answer that is not a 2xx)."""

    status: int
    headers: Any
    excerpt: str
    cut: bool = False  # the body was still coming at ``answer_limit``


def _reply(response: Response) -> Reply:
    """Read at most ``MAX_EXCERPT_BYTES`` of the body: a receiver streaming without end cannot hold the worker
    (the timeout bounds each read, not the whole body)."""
    excerpt = ""
    if not 200 <= response.status_code < 300:
        try:
            head = response.raw.read(MAX_EXCERPT_BYTES, decode_content=True) or b""
        except (requests.RequestException, HTTPError, OSError):
            head = b""
        excerpt = head.decode(response.encoding or "utf-8", errors="replace")
    return Reply(response.status_code, response.headers, excerpt)


class TooSlow(requests.Timeout):
    """The receiver kept sending its answer (a byte now and then, each within the read timeout) past the limit."""


def answer_limit() -> int:
    """Seconds a receiver has for its whole answer once connected: a timeout bounds each read, not the answer (a
    receiver sending a byte every few seconds would hold the worker until its time limit killed it)."""
    return 2 * settings.NOTIFY_WEBHOOK_TIMEOUT_SECONDS


def _send_pinned(prepared: requests.PreparedRequest, addresses: tuple[str, ...]) -> Reply:
    """Send ``prepared`` to the first of ``addresses`` that accepts a connection; the answer is cut off after
    ``answer_limit`` seconds (``TooSlow``, or a ``Reply`` marked ``cut`` when its status had come)."""
    tried = addresses[:MAX_ADDRESSES_TRIED]
    for index, address in enumerate(tried):
        with requests.Session() as session:
            adapter = PinnedAdapter(address)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            options = session.merge_environment_settings(prepared.url, {}, None, None, None)  # CA bundle from env
            options["stream"] = True  # the body is read by ``_reply``, a bounded part of it
            limit = threading.Timer(answer_limit(), adapter.cut)
            limit.start()
            try:
                try:
                    response = session.send(prepared, **options, allow_redirects=False,
                                            timeout=settings.NOTIFY_WEBHOOK_TIMEOUT_SECONDS)
                except requests.RequestException as exc:
                    if adapter.cut_off:
                        raise TooSlow(f"the receiver did not answer within {answer_limit()} seconds") from exc
                    if index == len(tried) - 1 or not _not_connected(exc):
                        raise
                    continue
                with response:  # closing drops the connection with the unread rest of the body
                    reply = _reply(response)
                    return replace(reply, cut=adapter.cut_off) if adapter.cut_off else reply
            finally:
                limit.cancel()
    raise requests.ConnectionError("no address to connect to")  # not reached: addresses is never empty


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
    if value.isascii() and value.isdigit():  # "²" is a digit to Python but no number float() reads
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def encode(body: dict) -> bytes:
    """The exact bytes sent (and signed)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def post_signed(*, url: str, secret: str, event: str, delivery_id: str, body: dict) -> Answer:
    """POST ``body`` as signed JSON to ``url``; never raises for what the network or the receiver did. Its error
    names the receiver by ``origin`` only: no part of the URL that may carry a credential."""
    answer = _post_signed(url=url, secret=secret, event=event, delivery_id=delivery_id, body=body)
    if not answer.error:
        return answer
    # A receiver's answer may hold NUL characters, which PostgreSQL cannot store in the delivery's reason.
    return replace(answer, error=redact(answer.error, url).replace("\x00", "\ufffd"))


def _post_signed(*, url: str, secret: str, event: str, delivery_id: str, body: dict) -> Answer:
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
        _parse(url)  # the clear reasons first (scheme, port), before the URL is normalised for sending
        prepared = requests.Request("POST", url, data=raw, headers=headers).prepare()
        target = resolve_target(prepared.url)  # the host name as sent (IDNA), resolved once
    except Unresolvable as exc:
        return Answer(False, error=str(exc), retryable=True)
    except BlockedAddress as exc:
        return Answer(False, error=f"Blocked: {exc}")
    except (requests.RequestException, ValueError) as exc:
        return Answer(False, error=f"Blocked: The URL is not valid ({exc})."[:1000])
    try:
        reply = _send_pinned(prepared, target.addresses)
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: POST to {origin(url)} failed: {redact(str(exc), url)}"
        return Answer(False, error=error[:1000], retryable=True)
    status = reply.status
    if 200 <= status < 300:
        return Answer(True, status=status)
    excerpt = reply.excerpt[:300].strip()
    if 300 <= status < 400:
        error = f"HTTP {status}: redirect to {origin(reply.headers.get('Location', '?'))} not followed"
    elif reply.cut:
        error = f"HTTP {status}: the rest of its answer had not come after {answer_limit()} seconds"
    else:
        error = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
    return Answer(False, status=status, error=error, retryable=status in RETRYABLE_STATUSES,
                  retry_after=_retry_after(reply.headers.get("Retry-After")) if status in (429, 503) else None)
