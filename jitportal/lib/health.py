"""Reachability checks for the database and the Celery broker, used by ``/healthz``.

``/healthz`` answers anyone, so a reason names the kind of failure only; the error's own text (host names,
addresses, database user names) goes to the log.
"""
import logging
import os
from pathlib import Path

from django.db import connections
from django.db.utils import DatabaseError
from kombu import Connection

logger = logging.getLogger(__name__)


def _reason(what: str, exc: BaseException) -> str:
    """Log why ``what`` failed; return a reason that reveals nothing of the infrastructure."""
    logger.warning("Health check: %s unreachable: %s: %s", what, type(exc).__name__, exc)
    return f"{type(exc).__name__} (details in the server log)"


def check_database(alias: str = "default") -> str | None:
    """Return ``None`` when the database answers a query, else the reason."""
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return _reason("database", exc)
    return None


def check_broker(url: str, transport_options: dict, timeout: float = 2.0) -> str | None:
    """Return ``None`` when the broker accepts a connection, else the reason.

    The embedded filesystem broker has no server: it is reachable when its folders are writable.
    """
    if url.startswith("filesystem://"):
        for key in ("data_folder_in", "data_folder_out", "control_folder"):
            folder = Path(transport_options.get(key, ""))
            if not folder.is_dir() or not os.access(folder, os.W_OK):
                return f"broker folder {key} is missing or not writable"
        return None
    conn = Connection(url, transport_options=transport_options, connect_timeout=timeout)
    try:
        conn.ensure_connection(max_retries=1, timeout=timeout)
        conn.default_channel  # noqa: B018 - opening the channel proves the broker answers
    except Exception as exc:  # noqa: BLE001 - any failure to reach the broker is "down"
        return _reason("broker", exc)
    finally:
        conn.release()
    return None


def ensure_broker_folders(transport_options: dict, result_backend: str = "") -> None:
    """Create the embedded broker's folders and a ``file://`` result folder (no-op for server brokers)."""
    for key in ("data_folder_in", "data_folder_out", "control_folder", "processed_folder"):
        if transport_options.get(key):
            Path(transport_options[key]).mkdir(parents=True, exist_ok=True)
    if result_backend.startswith("file://"):
        Path(result_backend.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
