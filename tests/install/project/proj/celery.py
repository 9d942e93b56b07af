"""The Celery app, made as the README says (``celery -A proj worker`` loads it)."""

import os

from celery import Celery

from triggers.tasks.runners import autodiscover_celery_tasks

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")

app = Celery("proj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
autodiscover_celery_tasks(app)
