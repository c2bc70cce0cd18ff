"""How a broker URL turns into Celery transport options and a result backend (one place)."""
from pathlib import Path

# The embedded broker has no push: an idle worker looks at its queue folder this often (kombu's default is 1 s,
# which a request would wait half of on average before a worker even sees it). A listing of an empty folder
# every 50 ms costs an idle worker well under 1% of a core.
FILESYSTEM_POLLING_INTERVAL = 0.05


def broker_options(url: str, folder: Path) -> tuple[dict, str]:
    """Return ``(transport_options, result_backend)`` for broker ``url``.

    ``filesystem://`` is the embedded broker: kombu's filesystem transport in ``folder``, shared by
    every process on the host, with results kept beside it. Server brokers keep their own defaults.
    """
    if url.startswith("filesystem://"):
        options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"),
            "processed_folder": str(folder / "processed"),
            "store_processed": False,
            "polling_interval": FILESYSTEM_POLLING_INTERVAL,
        }
        return options, f"file://{folder / 'results'}"
    backend = url if url.startswith("redis") else "rpc://"
    return {"visibility_timeout": 3600}, backend


def notification_routes(default_queue: str, notifications_queue: str = "") -> tuple[str, dict]:
    """``(notifications queue, task routes)``: every ``notifications.*`` task goes to its own queue (by default
    ``<default_queue>-notifications``), so an open never waits behind e-mail or webhooks."""
    queue = notifications_queue or f"{default_queue}-notifications"
    return queue, {"notifications.*": {"queue": queue}}
