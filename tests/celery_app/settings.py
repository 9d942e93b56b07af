"""The worker's Django settings: the suite's (the same caches), with this app installed.

``TRIGGERS_DEFAULT_RUNNER`` is not set, as in a Triggers 2.x project: the
worker has a Celery app, so its tasks' cascades go to Celery too.
"""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.celery_app"]  # noqa: F405
del TRIGGERS_DEFAULT_RUNNER  # noqa: F821
