"""The project's Celery app, made as 2.x projects made it (``celery -A tests.compat.app_2x``)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.compat.app_2x.settings")

app = Celery("app_2x")
app.config_from_object("tests.compat.app_2x.celeryconfig")
app.autodiscover_tasks()
