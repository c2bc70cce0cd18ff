"""Project-level tasks."""
from celery import shared_task


@shared_task(name="jitportal.ping")
def ping(payload: str) -> dict:
    """Echo ``payload`` back with the worker's host name: proves the broker round trip."""
    from celery import current_task

    return {"payload": payload, "hostname": current_task.request.hostname}
