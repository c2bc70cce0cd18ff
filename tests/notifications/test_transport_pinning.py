"""The webhook POST goes to the address that was checked (no second lookup: DNS rebinding cannot reach inside),
TLS is still verified against the URL's host name, bad ports are refused, and IPv6 forms of inside IPv4 addresses
count as inside.

The resolver is the only thing substituted (``transport._resolve``): its answers are what a rebinding DNS server
would say. The POSTs themselves are real, to real local receivers.
"""
from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import trustme

from notifications import transport
from notifications.forms import WebhookForm
from tests.notifications.factories import REQUEST_SCOPE
from tests.plugins.personas import make_persona
from tests.plugins.webhooks import WebhookReceiver

SECRET = "s3cret"


def post(url: str) -> transport.Answer:
    return transport.post_signed(url=url, secret=SECRET, event="opened", delivery_id="d-1", body={"event": "opened"})


class Resolver:
    """A scripted resolver: the n-th lookup gets the n-th answer (the last one again after that)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


@pytest.fixture
def resolver(monkeypatch) -> Iterator[Callable[..., Resolver]]:
    def install(*answers: list[str]) -> Resolver:
        scripted = Resolver(*answers)
        monkeypatch.setattr(transport, "_resolve", scripted)
        return scripted

    yield install


@pytest.fixture
def lenient(settings):
    settings.WEBHOOK_ALLOW_HTTP = settings.WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture
def production_guard(settings):
    settings.WEBHOOK_ALLOW_HTTP = False
    settings.WEBHOOK_ALLOW_PRIVATE = False


def port_of(receiver: WebhookReceiver) -> int:
    return receiver.server.server_address[1]


# --- one lookup, and the connection goes where the lookup said --------------------------------------------------

def test_a_rebinding_answer_after_the_check_is_never_used(lenient, resolver, webhook_receiver):
    # "hooks.test" does not exist in real DNS, and the scripted resolver answers 10.255.255.1 from its second
    # lookup on: the POST reaches the receiver at 127.0.0.1 only if the first, checked answer is the one used.
    lookups = resolver(["127.0.0.1"], ["10.255.255.1"])
    port = port_of(webhook_receiver)
    assert post(f"http://hooks.test:{port}/hook") == transport.Answer(True, status=200)
    [received] = webhook_receiver.wait_for(1)
    assert lookups.calls == [("hooks.test", port)]
    assert received.header("Host") == f"hooks.test:{port}"  # the URL's host, not the pinned address
    assert received.path == "/hook"
    assert webhook_receiver.verify(received, SECRET)


def test_every_resolved_address_is_checked(production_guard, resolver, webhook_receiver):
    lookups = resolver(["8.8.8.8", "127.0.0.1"])
    answer = post(f"https://hooks.test:{port_of(webhook_receiver)}/hook")
    assert not answer.delivered and not answer.retryable
    assert answer.error == ("Blocked: The host hooks.test resolves to a private or local address (127.0.0.1); "
                            "only public receivers are allowed.")
    assert len(lookups.calls) == 1
    assert webhook_receiver.received == []


def test_the_next_checked_address_is_tried_when_one_refuses_the_connection(lenient, resolver, webhook_receiver):
    resolver(["127.0.0.2", "127.0.0.1"])  # the receiver listens on 127.0.0.1 only: 127.0.0.2 refuses at once
    assert post(f"http://hooks.test:{port_of(webhook_receiver)}/hook").delivered
    assert len(webhook_receiver.wait_for(1)) == 1


def test_a_proxy_from_the_environment_is_not_used(lenient, resolver, webhook_receiver, monkeypatch):
    # A proxy would look the name up again; the pinned POST goes straight to the checked address.
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    resolver(["127.0.0.1"])
    assert post(f"http://hooks.test:{port_of(webhook_receiver)}/hook").delivered


def test_a_name_that_does_not_resolve_is_retried_later(lenient, resolver, monkeypatch):
    resolver([])  # no address at all
    answer = post("http://hooks.test:8080/hook")
    assert (answer.delivered, answer.retryable) == (False, True)
    assert answer.error == "The host hooks.test cannot be resolved (no address)."

    def failing(host: str, port: int) -> list[str]:
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(transport, "_resolve", failing)
    with pytest.raises(transport.BlockedAddress, match="cannot be resolved"):  # what the form says
        transport.resolve_target("http://hooks.test:8080/hook")
    assert post("http://hooks.test:8080/hook").retryable


# --- TLS: SNI and the certificate check keep the host name ------------------------------------------------------

@pytest.fixture
def tls_receiver(tmp_path, monkeypatch) -> Iterator[tuple[WebhookReceiver, list[str | None]]]:
    """A receiver over TLS with a certificate for ``hooks.test`` only (not for 127.0.0.1), its CA trusted via
    ``REQUESTS_CA_BUNDLE`` (how an operator trusts a private CA); yields it and the SNI names it was asked for."""
    ca = trustme.CA()
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_path))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("hooks.test").configure_cert(context)
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    receiver = WebhookReceiver()
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    receiver.start()
    yield receiver, names
    receiver.stop()


def test_https_is_verified_against_the_host_name_not_the_address(lenient, resolver, tls_receiver):
    receiver, names = tls_receiver
    port = port_of(receiver)
    resolver(["127.0.0.1"])
    assert post(f"https://hooks.test:{port}/hook") == transport.Answer(True, status=200)
    [received] = receiver.wait_for(1)
    assert names == ["hooks.test"]
    assert received.header("Host") == f"hooks.test:{port}"


def test_https_to_a_name_the_certificate_does_not_cover_fails(lenient, resolver, tls_receiver):
    receiver, names = tls_receiver
    resolver(["127.0.0.1"])
    answer = post(f"https://other.test:{port_of(receiver)}/hook")
    assert not answer.delivered and answer.retryable
    assert answer.error.startswith("SSLError:")
    assert "other.test" in answer.error
    assert names == ["other.test"]
    assert receiver.received == []


# --- ports -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("port", ["99999", "0", "abc"])
def test_a_port_out_of_range_is_a_blocked_address(production_guard, port):
    url = f"https://hooks.example:{port}/hook"
    with pytest.raises(transport.BlockedAddress, match="a port must be a number from 1 to 65535"):
        transport.check_url(url)
    answer = post(url)
    assert (answer.delivered, answer.retryable) == (False, False)
    assert answer.error.startswith("Blocked: The URL's port is not valid (")


@pytest.mark.django_db
def test_the_form_refuses_a_port_out_of_range(production_guard, persona_mappings):
    form = WebhookForm({"name": "x", "url": "https://hooks.example:99999/hook", "format": "json",
                        "events": ["opened"], "scope": REQUEST_SCOPE, "active": "on"},
                       actor=make_persona("policy_admin"))
    assert not form.is_valid()
    assert "a port must be a number from 1 to 65535" in form.errors["url"][0]


# --- IPv6 forms of IPv4 addresses ------------------------------------------------------------------------------

def teredo(server: str, client: str) -> str:
    """A Teredo address: 2001:0::/32, the server, flags, and the client's port and address obfuscated."""
    value = (0x20010000 << 96) | (int(ipaddress.IPv4Address(server)) << 64) | ((4000 ^ 0xFFFF) << 32)
    return str(ipaddress.IPv6Address(value | (int(ipaddress.IPv4Address(client)) ^ 0xFFFFFFFF)))


INSIDE = ("127.0.0.1", "169.254.169.254")
EMBEDDED_FORMS = {
    "mapped": lambda v4: f"::ffff:{v4}",
    "6to4": lambda v4: str(ipaddress.IPv6Address((0x2002 << 112) | (int(ipaddress.IPv4Address(v4)) << 80))),
    "nat64": lambda v4: f"64:ff9b::{v4}",
    "ipv4-compatible": lambda v4: f"::{v4}",
    "teredo-server": lambda v4: teredo(v4, "8.8.8.8"),
    "teredo-client": lambda v4: teredo("8.8.8.8", v4),
}


@pytest.mark.parametrize("inside", INSIDE)
@pytest.mark.parametrize("form", sorted(EMBEDDED_FORMS))
def test_ipv6_forms_of_inside_addresses_are_private(form, inside):
    address = EMBEDDED_FORMS[form](inside)
    assert ipaddress.IPv4Address(inside) in transport._embedded_ipv4(ipaddress.IPv6Address(address))
    assert transport._is_private(address)


@pytest.mark.parametrize("form", sorted(EMBEDDED_FORMS))
def test_the_same_forms_of_a_public_address_are_not_judged_by_the_wrapper_alone(form):
    address = EMBEDDED_FORMS[form]("8.8.8.8")
    assert ipaddress.IPv4Address("8.8.8.8") in transport._embedded_ipv4(ipaddress.IPv6Address(address))
    # Teredo (2001::/32) is itself not global; the other wrappers of a public address are.
    assert transport._is_private(address) == form.startswith("teredo")


def test_the_local_use_nat64_prefix_is_private():
    assert transport._is_private("64:ff9b:1::808:808")


@pytest.mark.parametrize("url", ["https://[64:ff9b::a9fe:a9fe]/latest/meta-data/", "https://[2002:7f00:1::]/",
                                 "https://[64:ff9b::127.0.0.1]:8443/hook"])
def test_the_guard_refuses_wrapped_inside_addresses(production_guard, url):
    with pytest.raises(transport.BlockedAddress, match="private or local address"):
        transport.check_url(url)


@pytest.fixture
def streaming_receiver() -> Iterator[Callable[..., str]]:
    """A receiver that sends ``head``, then ``chunk`` every ``every`` seconds without end (until the test is over):
    ``start(head, chunk, every, scheme="http")`` gives its URL."""
    stop = threading.Event()
    servers: list[socket.socket] = []

    def serve(server: socket.socket, head: bytes, chunk: bytes, every: float) -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            try:
                connection.sendall(head)
                while not stop.wait(every):
                    connection.sendall(chunk)
            except OSError:
                pass  # the portal hung up: what it should do

    def start(head: bytes, chunk: bytes, every: float, scheme: str = "http") -> str:
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)
        threading.Thread(target=serve, args=(server, head, chunk, every), daemon=True).start()
        return f"{scheme}://127.0.0.1:{server.getsockname()[1]}/hook"

    deadline = threading.Timer(20, stop.set)  # without a bound, a POST would last as long as this
    deadline.start()
    yield start
    deadline.cancel()
    stop.set()
    for server in servers:
        server.close()


@pytest.mark.parametrize("status", [200, 500])
def test_a_receiver_streaming_an_endless_answer_does_not_hold_the_sender(streaming_receiver, settings, status):
    settings.NOTIFY_WEBHOOK_TIMEOUT_SECONDS = 2  # bounds each read; the body as a whole is not read
    head = f"HTTP/1.1 {status} Busy\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    started = time.monotonic()
    answer = post(streaming_receiver(head, b"400\r\n" + b"x" * 1024 + b"\r\n", 0.01))
    assert time.monotonic() - started < 5
    assert answer.delivered is (status == 200)
    if status == 500:
        assert answer.retryable and answer.error.startswith("HTTP 500: xxx") and len(answer.error) < 320


@pytest.mark.parametrize(("head", "delivered", "error"), [
    (b"HTTP/1.1 2", False, "TooSlow: POST to http://127.0.0.1:{port} failed: the receiver did not answer within 2 "
                           "seconds"),  # its status line without end
    (b"HTTP/1.1 500 Busy\r\nContent-Length: 100000\r\n\r\n", False,
     "HTTP 500: the rest of its answer had not come after 2 seconds"),  # an error's body without end
    (b"HTTP/1.1 200 OK\r\nX-Slow: ", True, ""),  # it took the delivery; its headers never end
])
def test_a_receiver_dripping_its_answer_does_not_hold_the_sender(streaming_receiver, settings, head, delivered,
                                                                  error):
    """Each read gets a byte within the timeout, so the timeout alone never ends it: the whole answer has a limit
    too, and the delivery is retried later, saying why (not held until the worker's time limit kills it, which
    leaves it 'sending' with no reason, then sent again)."""
    settings.NOTIFY_WEBHOOK_TIMEOUT_SECONDS = 1
    url = streaming_receiver(head, b"x", 0.2)  # a byte at a time, each well within the read timeout
    started = time.monotonic()
    answer = post(url)
    assert time.monotonic() - started < 5
    assert (answer.delivered, answer.retryable, answer.error) == (
        delivered, not delivered, error.format(port=url.split(":")[2].split("/")[0]))


def test_a_receiver_dripping_its_tls_handshake_does_not_hold_the_sender(streaming_receiver, settings):
    """A server answering the ClientHello with a record that claims 16 KB and then sends it a byte at a time (each
    read within the timeout) is cut off too: Python's TLS handshake keeps one deadline, the timeout, for all its
    reads, so the sender is free after it and retries later."""
    settings.NOTIFY_WEBHOOK_TIMEOUT_SECONDS = 1
    url = streaming_receiver(b"\x16\x03\x03\x40\x00", b"x", 0.2, "https")
    started = time.monotonic()
    answer = post(url)
    assert time.monotonic() - started < 5
    assert (answer.delivered, answer.retryable) == (False, True) and "timed out" in answer.error, answer.error
