"""``python -m emulator``: serve the emulator over HTTPS until SIGINT/SIGTERM."""
from __future__ import annotations

import argparse
import signal
import ssl
import sys
import threading
from pathlib import Path

from werkzeug.serving import make_server

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
    server = make_server(args.host, args.port, create_app(state), threaded=True, ssl_context=context)
    server.daemon_threads = True
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
