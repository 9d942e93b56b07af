"""The Celery configuration shared by the test process and the workers it starts.

It does not import Celery at module level, so that the settings and the
task modules around it load where Celery is not installed.
"""

from __future__ import annotations

import os
from typing import Any

#: environment variable naming the broker a worker connects to
BROKER_ENV = "TRIGGERS_TEST_CELERY_BROKER"
#: Redis database 9 is the broker of these tests alone (the suite's caches use 15,
#: the benchmarks 5 and 6).
REDIS_BROKER = os.environ.get("TRIGGERS_TEST_CELERY_REDIS_BROKER", "redis://127.0.0.1:6379/9")
AMQP_BROKER = os.environ.get(
    "TRIGGERS_TEST_CELERY_AMQP_BROKER", "amqp://guest:guest@127.0.0.1:5672//"
)

#: where a task goes unless routed: t_report, t_flaky, t_retrying, t_skipped
QUEUE_DEFAULT = "triggers-tests-celery"
#: where ImportSubject goes: its class says ``queue = QUEUE_IMPORTS``
QUEUE_IMPORTS = "triggers-tests-imports"
#: where score_page goes: ``task_routes`` says so
QUEUE_SCORES = "triggers-tests-scores"
QUEUES = (QUEUE_DEFAULT, QUEUE_IMPORTS, QUEUE_SCORES)


def make_app(broker_url: str, main: str = "tests.celery_app", **conf: Any) -> Any:
    """A Celery app configured as the test project's, on ``broker_url``."""
    from celery import Celery

    app = Celery(main)
    app.conf.update(
        broker_url=broker_url,
        broker_connection_retry_on_startup=True,
        task_default_queue=QUEUE_DEFAULT,
        task_routes={"celery_tests.score_page": {"queue": QUEUE_SCORES}},
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_enable_remote_control=False,
        **conf,
    )
    return app
