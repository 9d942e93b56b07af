"""The 2.x app of ``tests/compat/app_2x``, unchanged, on a real Celery worker.

Its tasks are registered as 2.x registered them (``app.register_task(ImportSubject())``)
and its Celery app is made as a 2.x project made it; a worker started on it here runs a
session the test process fires. Celery's own record of an attempt that asked to retry is
RETRY, read from the app's result backend (Redis), and the worker sends ``task_retry``
(heard by ``tests/celery/retry_monitor.py``, which the worker imports); the session keeps
its replayed instance as ever.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from tests.celery.conftest import (
    DEADLINE,
    celery_manager,
    require_redis_broker,
    running_workers,
    statuses,
    wait_until,
)
from tests.celery_app.config import REDIS_BROKER
from tests.conftest import require_service
from triggers import CacheStorageBackend
from triggers.types import TaskInstance

QUEUE = "triggers-tests-app-2x"
PROJECT = ("tests.compat.app_2x", "tests.compat.app_2x.settings")
WORKFLOW = {
    "t_importSubject": {"after": ["sessionStarted"], "run": "app_2x.import_subject"},
    "t_scorePage": {
        "after": ["t_importSubject"],
        "andEvery": "pageSaved",
        "run": "app_2x.score_page",
    },
    # Sent by this process, so that it knows the first attempt's Celery id; a short cooldown.
    "t_fetchReport": {
        "after": ["sessionStarted"],
        "run": "app_2x.fetch_report",
        "withParams": {"cooldown": 1},
    },
}


@pytest.fixture(scope="module")
def app_2x() -> Any:
    require_redis_broker()
    from tests.compat.app_2x import tasks  # noqa: F401  (the test process sends them)
    from tests.compat.app_2x.celery import app

    return app


@pytest.fixture(scope="module")
def worker(app_2x: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    with running_workers(
        app_2x,
        REDIS_BROKER,
        tmp_path_factory.mktemp("app-2x-worker"),
        project=PROJECT,
        include=("tests.celery.retry_monitor",),
        app2x=(QUEUE,),
    ) as workers:
        yield workers


@pytest.fixture
def published(app_2x: Any) -> Any:
    """The Celery id and instance of every task this process sends, in order."""
    from celery.signals import after_task_publish

    sent: list[tuple[str, str]] = []

    def record(sender: Any = None, headers: Any = None, body: Any = None, **kwargs: Any) -> None:
        sent.append((headers["id"], body[1]["instance_name"]))

    after_task_publish.connect(record, weak=False)
    yield sent
    after_task_publish.disconnect(record)


def test_the_2x_app_runs_unchanged_and_celery_sees_its_retry(worker, app_2x, published, settings):
    require_service("redis")
    from celery.result import AsyncResult

    from tests.celery.retry_monitor import KEY

    # As in a 2.x project: no runner setting; the app's own Celery app sends.
    uid = f"app-2x-{uuid.uuid4().hex}"
    manager = celery_manager(settings, app_2x, CacheStorageBackend(uid, cache="redis"), WORKFLOW)

    manager.fire("sessionStarted", {"subject_id": 42})
    manager.fire("pageSaved", {"page": 1})
    manager.fire("pageSaved", {"page": 13})
    wait_until(
        statuses(manager),
        {
            "t_importSubject#0": "finished",
            "t_scorePage#0": "finished",
            "t_scorePage#1": "failed",
            "t_fetchReport#0": "replayed",
            "t_fetchReport#1": "finished",
        },
        worker,
    )
    storage = CacheStorageBackend(uid, cache="redis")
    failed = storage["t_scorePage#1"].metadata
    assert failed["exceptionContext"] == {"page": 13, "rule": "no-13"}
    assert failed["exceptionType"] == "builtins.ValueError"
    assert storage.get_instances_with_unresolved_logs() == []
    assert storage["t_fetchReport#1"].metadata["result"] == {"fetched": True, "retries": 1}

    # Celery's own record of the first attempt: RETRY (read as Flower would).
    first = [celery_id for celery_id, name in published if name == "t_fetchReport#0"]
    assert len(first) == 1
    state = _state_once_settled(AsyncResult(first[0], app=app_2x))
    assert state == "RETRY"

    # The worker sent task_retry for it, and for nothing else.
    raw = app_2x.backend.client.lrange(KEY.format(uid=uid), 0, -1)
    heard = [json.loads(item) for item in raw]
    assert [(h["task"], h["id"], h["instance"], h["retries"]) for h in heard] == [
        ("app_2x.fetch_report", first[0], "t_fetchReport#0", 0)
    ]
    # The replay is a task of its own, which Celery records as a success.
    assert TaskInstance.STATUS_FINISHED == storage["t_fetchReport#1"].status


def _state_once_settled(result: Any) -> str:
    """The result's state once it is no longer pending (bounded wait: the state is
    written as the attempt ends, a moment after its replay was committed)."""
    deadline = time.monotonic() + DEADLINE
    while result.state == "PENDING" and time.monotonic() < deadline:
        time.sleep(0.1)
    return str(result.state)
