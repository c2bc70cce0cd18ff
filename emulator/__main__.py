"""``python -m emulator``: serve the emulator over HTTPS until SIGINT/SIGTERM."""
from __future__ import annotations

import argparse
import signal
import socket
import ssl
import sys
import threading
from pathlib import Path

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from emulator.app import create_app
from emulator.certs import ensure_certs
from emulator.jit.engine import expire_due
from emulator.scenarios import apply_scenario
from emulator.state import EmulatorState

SWEEP_SECONDS = 1.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443, help="0 picks a free port")
    parser.add_argument("--scenario", default="demo", help="demo, large or a JSON file")
    parser.add_argument("--state-file", type=Path, default=None, help="load at start (if present), save at stop")
    parser.add_argument("--cert-dir", type=Path, default=Path("var/emulator"))
    parser.add_argument("--large-vms", type=int, default=10_000)
    parser.add_argument("--large-events", type=int, default=1_000)
    return parser.parse_args(argv)


class NoDelayHandler(WSGIRequestHandler):
    """Werkzeug's handler with Nagle's algorithm off. Werkzeug sends in small writes (after TLS 1.3's session
    tickets, the headers, then the body), and with Nagle each waited for the client's delayed ACK of the one
    before: about 10 ms added to every call, which Azure does not add."""

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def make_emulator_server(host: str, port: int, app, context: ssl.SSLContext) -> BaseWSGIServer:
    """The HTTPS server: one thread per connection, each connection without Nagle's delay."""
    server = make_server(host, port, app, threaded=True, ssl_context=context, request_handler=NoDelayHandler)
    server.daemon_threads = True
    return server


def _sweeper(state: EmulatorState, stop: threading.Event) -> None:
    while not stop.wait(SWEEP_SECONDS):
        with state.lock:
            expire_due(state)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    certs = ensure_certs(args.cert_dir)
    state = EmulatorState(cert_dir=certs.ca.parent, state_file=args.state_file)
    if not state.load():
        apply_scenario(state, args.scenario, large_vms=args.large_vms, large_events=args.large_events)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certs.cert), str(certs.key))
    server = make_emulator_server(args.host, args.port, create_app(state), context)
    stop = threading.Event()
    sweeper = threading.Thread(target=_sweeper, args=(state, stop), daemon=True)
    sweeper.start()

    def shutdown(signum, frame) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"EMULATOR READY url=https://{host}:{server.server_port} ca={certs.ca}", flush=True)
    try:
        server.serve_forever()
    finally:
        stop.set()
        server.server_close()
        state.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
