"""The worker's Celery app, set up as a Django project sets one up (``celery -A tests.celery_app``)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.celery_app.settings")

from triggers.operations.resend import add_celery_task  # noqa: E402
from triggers.tasks.runners import autodiscover_celery_tasks  # noqa: E402

from .config import BROKER_ENV, REDIS_BROKER, make_app  # noqa: E402

app = make_app(os.environ.get(BROKER_ENV, REDIS_BROKER))
# Celery's discovery imports tests.celery_app.tasks; then every registered task
# gets its Celery task, at the latest when the worker starts.
app.autodiscover_tasks()
autodiscover_celery_tasks(app)
# The periodic re-send of instances whose message was lost (celery beat would run it).
add_celery_task(app)
