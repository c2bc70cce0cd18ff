"""jitportal: just-in-time network access to Azure virtual machines."""
from .celery import app as celery_app

__all__ = ["celery_app"]
