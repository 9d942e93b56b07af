"""The project's package imports its Celery app, as Celery's Django guide has it."""

from .celery import app

__all__ = ["app"]
