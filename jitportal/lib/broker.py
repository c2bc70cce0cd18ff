"""How a broker URL turns into Celery transport options and a result backend (one place)."""
from pathlib import Path


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
        }
        return options, f"file://{folder / 'results'}"
    backend = url if url.startswith("redis") else "rpc://"
    return {"visibility_timeout": 3600}, backend
