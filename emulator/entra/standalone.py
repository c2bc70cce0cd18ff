"""The Entra endpoints on their own, over a minimal state: for fast in-process tests of this package."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask

from emulator.entra.models import EntraTenant


class IdentityState:
    """The part of the emulator state the Entra endpoints use: tenants, a lock, a virtual clock, a key folder."""

    def __init__(self, tenants: list[EntraTenant], cert_dir: Path | str) -> None:
        self.tenants: dict[str, EntraTenant] = {t.tenant_id: t for t in tenants}
        self.lock = threading.RLock()
        self.cert_dir = Path(cert_dir)
        self.clock_offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.clock_offset

    def advance(self, seconds: float) -> datetime:
        with self.lock:
            self.clock_offset += timedelta(seconds=seconds)
            return self.now()


def create_identity_app(state: IdentityState) -> Flask:
    """A Flask app serving only the Entra ID, Graph and Entra knob routes over ``state``."""
    from emulator.entra import create_entra_blueprint

    app = Flask("emulator.entra")
    app.config["EMULATOR_STATE"] = state
    app.json.sort_keys = False
    app.register_blueprint(create_entra_blueprint())
    return app
