"""What a monitor (Flower, say) hears from a worker: each ``task_retry`` signal, pushed
onto a Redis list named after the session, for the test to read.

A worker imports it with ``--include``; the app it watches is not changed.
"""

from __future__ import annotations

import json
import os
from typing import Any

import redis
from celery.signals import task_retry

from tests.celery_app.config import BROKER_ENV

#: the list of a session's retries, on the broker's Redis database
KEY = "triggers-tests:task-retry:{uid}"


@task_retry.connect
def _heard(sender: Any = None, request: Any = None, reason: Any = None, **kwargs: Any) -> None:
    uid = (request.kwargs or {}).get("storage_uid", "")
    heard = {
        "task": sender.name,
        "id": request.id,
        "retries": request.retries,
        "instance": (request.kwargs or {}).get("instance_name"),
        "reason": str(reason),
    }
    client = redis.Redis.from_url(os.environ[BROKER_ENV])
    try:
        client.rpush(KEY.format(uid=uid), json.dumps(heard))
        client.expire(KEY.format(uid=uid), 600)
    finally:
        client.close()
