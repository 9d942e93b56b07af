"""Settings of a minimal project: sessions in Redis, tasks on Celery with a Redis broker.

The test gives the addresses (and a queue of its own) through the environment.
"""

import os

SECRET_KEY = "installed-worker-test"
USE_TZ = True
INSTALLED_APPS = ["triggers", "shop"]
DATABASES = {}
CACHES = {
    "default": {
        # Django's own Redis cache: redis-py comes with the celery extra.
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ["INSTALL_TEST_REDIS_URL"],
        "KEY_PREFIX": os.environ["INSTALL_TEST_QUEUE"],
        "OPTIONS": {"socket_timeout": 10, "socket_connect_timeout": 5},
    }
}
TRIGGERS_DEFAULT_RUNNER = "celery"
TRIGGERS_SESSION_TIMEOUT = 600

CELERY_BROKER_URL = os.environ["INSTALL_TEST_BROKER"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = os.environ["INSTALL_TEST_QUEUE"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
