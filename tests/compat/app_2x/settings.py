"""The worker's Django settings: the suite's (the same caches), with this app installed
and no runner setting, as in a 2.x project (its tasks run on Celery)."""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.compat.app_2x"]  # noqa: F405
del TRIGGERS_DEFAULT_RUNNER  # noqa: F821
