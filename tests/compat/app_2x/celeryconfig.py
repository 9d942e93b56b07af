"""The app's Celery configuration (``app.config_from_object``), as a 2.x project kept it.

Results are kept on Redis (the broker's database), so that Celery's own state of
each attempt can be read, as Flower or django-celery-results read it.
"""

import os

broker_url = os.environ.get("TRIGGERS_TEST_CELERY_REDIS_BROKER", "redis://127.0.0.1:6379/9")
result_backend = broker_url
broker_connection_retry_on_startup = True
task_default_queue = "triggers-tests-app-2x"
task_ignore_result = False
worker_prefetch_multiplier = 1
worker_enable_remote_control = False
