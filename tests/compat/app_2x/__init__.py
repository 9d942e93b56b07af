"""A small Django app written for Triggers 2.x, kept here unchanged: its Celery app, its
tasks (registered with ``app.register_task``) and its own tests, as a 2.x project had them.

The package imports its Celery app, as Celery's Django guide says, so it needs Celery:
``tests/compat/test_app_2x.py`` runs its tests where Celery is installed, and
``tests/celery/test_app_2x_worker.py`` runs its tasks on a real worker.
"""

from .celery import app as celery_app

__all__ = ["celery_app"]
