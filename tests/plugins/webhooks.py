"""``webhook_receiver``: a real local HTTP server that records every POST (headers, body) in order.

Scripted answers (``respond_with``) let a test make the receiver fail (500, 429 with Retry-After, ...) before it
accepts; ``verify`` checks a POST's ``X-Jitportal-Signature`` the way a receiver should (HMAC-SHA256 over
``"<timestamp>.<raw body>"``), written here independently of the portal's own code.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass(frozen=True)
class Received:
    """One POST the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"


class WebhookReceiver:
    """The server's state: what arrived, and what to answer next (200 once the script runs out)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._script: list[Answer] = []
        self._lock = threading.Condition()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def respond_with(self, *answers: Answer | int) -> None:
        """Answer the next POSTs with these (a status alone means an empty-bodied answer), then 200."""
        with self._lock:
            self._script.extend(a if isinstance(a, Answer) else Answer(status=a, body=b"") for a in answers)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until ``count`` POSTs arrived (or fail the test); returns all of them in order."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"the webhook receiver got {len(self.received)} POSTs, expected {count}")
                self._lock.wait(left)
            return list(self.received)

    @staticmethod
    def verify(received: Received, secret: str, *, tolerance_seconds: int = 300) -> bool:
        """Whether the POST is signed with ``secret`` and its timestamp is recent."""
        timestamp = received.header("X-Jitportal-Timestamp") or ""
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance_seconds:
            return False
        expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + received.body,
                                        hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, received.header("X-Jitportal-Signature") or "")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    answer = receiver._script.pop(0) if receiver._script else Answer()
                    receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                    receiver._lock.notify_all()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args) -> None:
                return

        return Handler

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A local HTTP receiver for webhooks (``.url``, ``.received``, ``.wait_for(n)``, ``.verify(r, secret)``)."""
    receiver = WebhookReceiver()
    receiver.start()
    yield receiver
    receiver.stop()
