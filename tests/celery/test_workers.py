"""A questionnaire workflow run end to end by real Celery workers.

The test process fires; workers started here (``celery worker``, solo pool)
run every task and its cascades, against Redis as the broker (and, once,
RabbitMQ). Sessions live in the suite's Redis cache, which the workers share.
Each task's result records the queue it was delivered from and the worker
that ran it. The only waits are bounded polls of the session.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.celery.conftest import (
    celery_manager,
    require_broker,
    require_celery,
    running_workers,
    statuses,
    wait_until,
)
from tests.celery_app.config import (
    AMQP_BROKER,
    QUEUE_DEFAULT,
    QUEUE_IMPORTS,
    QUEUE_SCORES,
    QUEUES,
    REDIS_BROKER,
    make_app,
)
from tests.conftest import require_service
from triggers import CacheStorageBackend, TriggerManager
from triggers.testing import PassThruTask
from triggers.types import TaskInstance

FINISHED = TaskInstance.STATUS_FINISHED

WORKFLOW: dict[str, dict[str, Any]] = {
    # No "using": the default runner, which is celery in a process with a Celery app.
    "t_importSubject": {"after": ["sessionStarted"], "run": "celery_tests.import_subject"},
    "t_scorePage": {
        "after": ["t_importSubject"],
        "andEvery": "pageSaved",
        "run": "celery_tests.score_page",
    },
    "t_report": {"after": ["t_scorePage"], "run": PassThruTask.name, "using": "celery"},
    "t_flaky": {"after": ["t_importSubject"], "run": "celery_tests.flaky"},
    "t_retrying": {"after": ["sessionStarted"], "run": "celery_tests.retry_twice"},
    "t_skipped": {"after": ["sessionStarted"], "run": "celery_tests.skip_self"},
}


@pytest.fixture(scope="module")
def redis_workers(redis_app: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two workers: one for the default and import queues, one for the score queue."""
    with running_workers(
        redis_app,
        REDIS_BROKER,
        tmp_path_factory.mktemp("redis-workers"),
        importer=(QUEUE_DEFAULT, QUEUE_IMPORTS),
        scorer=(QUEUE_SCORES,),
    ) as workers:
        yield workers


@pytest.fixture
def celery_session(settings: Any) -> Any:
    """A manager on a new session in the shared Redis cache, with the setup of a 2.x project."""
    require_service("redis")

    def start(app: Any) -> TriggerManager:
        storage = CacheStorageBackend(f"celery-{uuid.uuid4().hex}", cache="redis")
        return celery_manager(settings, app, storage, WORKFLOW)

    return start


def instance(manager: TriggerManager, name: str) -> TaskInstance:
    return CacheStorageBackend(manager.storage.uid, cache="redis")[name]


def result(manager: TriggerManager, name: str) -> dict[str, Any]:
    found: dict[str, Any] = instance(manager, name).metadata[TaskInstance.META_RESULT]
    return found


def test_a_questionnaire_runs_on_celery_workers(redis_workers, redis_app, celery_session):
    manager = celery_session(redis_app)
    assert manager.default_task_runner_name == "celery"
    importer, scorer = redis_workers["importer"], redis_workers["scorer"]

    manager.fire("sessionStarted", {"subject_id": 42})
    manager.fire("pageSaved", {"page": 1})
    manager.fire("pageSaved", {"page": 2})
    wait_until(
        statuses(manager),
        {
            "t_importSubject#0": FINISHED,
            "t_scorePage#0": FINISHED,
            "t_scorePage#1": FINISHED,
            "t_report#0": FINISHED,
            "t_flaky#0": TaskInstance.STATUS_FAILED,
            "t_retrying#0": TaskInstance.STATUS_REPLAYED,
            "t_retrying#1": TaskInstance.STATUS_REPLAYED,
            "t_retrying#2": FINISHED,
            "t_skipped#0": TaskInstance.STATUS_SKIPPED,
        },
        redis_workers,
    )

    # Routed by the class's queue, and by task_routes; each ran on the worker of its queue.
    imported = result(manager, "t_importSubject#0")
    assert imported["subject_id"] == 42
    assert (imported["queue"], imported["hostname"]) == (QUEUE_IMPORTS, importer.hostname)
    scores = sorted(
        (result(manager, f"t_scorePage#{n}") for n in (0, 1)), key=lambda r: r["page"]
    )
    assert [(r["page"], r["score"]) for r in scores] == [(1, 10), (2, 20)]
    assert {(r["queue"], r["hostname"]) for r in scores} == {(QUEUE_SCORES, scorer.hostname)}
    # The cascade of a score, sent by the worker, reached the report on the default queue.
    report = result(manager, "t_report#0")
    assert report["kwargs"]["t_scorePage"]["page"] in (1, 2)

    # The failure is recorded as in any runner, and Celery saw it fail too.
    failed = instance(manager, "t_flaky#0")
    assert failed.metadata[TaskInstance.META_EXCEPTION_TYPE] == "builtins.RuntimeError"
    assert "the subject is not ready" in importer.log()

    # A retry replays on Celery: the replay's countdown is its cooldown, its retries its depth.
    retried = [instance(manager, f"t_retrying#{n}") for n in range(3)]
    assert [i.depth for i in retried] == [0, 1, 2]
    assert [i.cooldown for i in retried] == [0, 0.2, 0.2]
    assert retried[1].metadata["attempt"] == 1
    last = result(manager, "t_retrying#2")
    assert (last["retries"], last["eta"], last["queue"]) == (2, True, QUEUE_DEFAULT)

    assert instance(manager, "t_skipped#0").metadata["reason"] == "nothing to import"

    # The operator replays the failure with other kwargs; the replay runs on a worker.
    manager.replay_failed_instance("t_flaky#0", {"t_importSubject": {"fixed": True}})
    wait_until(
        statuses(manager),
        {"t_flaky#0": TaskInstance.STATUS_REPLAYED, "t_flaky#1": FINISHED},
        redis_workers,
    )
    replayed = result(manager, "t_flaky#1")
    assert (replayed["fixed"], replayed["retries"], replayed["queue"]) == (True, 1, QUEUE_DEFAULT)
    assert CacheStorageBackend(manager.storage.uid, cache="redis").get_unresolved_instances() == []


def test_a_cascade_runs_on_a_worker_of_rabbitmq(celery_session, tmp_path):
    require_celery()
    require_broker(AMQP_BROKER)
    from tests.celery_app import tasks  # noqa: F401

    app = make_app(AMQP_BROKER, main="tests.celery_app.amqp")
    manager = celery_session(app)
    with running_workers(app, AMQP_BROKER, tmp_path, rabbit=QUEUES) as workers:
        manager.fire("sessionStarted", {"subject_id": 7})
        manager.fire("pageSaved", {"page": 3})
        wait_until(
            statuses(manager),
            {"t_importSubject#0": FINISHED, "t_scorePage#0": FINISHED, "t_report#0": FINISHED},
            workers,
        )
    hostname = workers["rabbit"].hostname
    assert result(manager, "t_importSubject#0")["queue"] == QUEUE_IMPORTS
    score = result(manager, "t_scorePage#0")
    assert (score["score"], score["queue"], score["hostname"]) == (30, QUEUE_SCORES, hostname)


# --------------------------------------------------------------------------- the database backend


@pytest.fixture
def database_workers(redis_app: Any, tmp_path_factory: pytest.TempPathFactory, django_db_setup: Any) -> Any:
    """One worker for every queue, started once the test databases exist (it is told their name)."""
    with running_workers(
        redis_app,
        REDIS_BROKER,
        tmp_path_factory.mktemp("database-workers"),
        everything=QUEUES,
    ) as workers:
        yield workers


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_a_questionnaire_on_the_database_backend(database_workers, redis_app, settings):
    """The workers rebuild the database backend from each payload (its alias included)."""
    require_service("postgresql")
    from triggers.storages.database import DatabaseStorageBackend

    uid = f"celery-db-{uuid.uuid4().hex}"
    manager = celery_manager(settings, redis_app, DatabaseStorageBackend(uid, using="pg"), WORKFLOW)
    manager.fire("sessionStarted", {"subject_id": 7})
    manager.fire("pageSaved", {"page": 1})

    def read() -> dict[str, str]:
        return {i.name: i.status for i in DatabaseStorageBackend(uid, using="pg")}

    wait_until(
        read,
        {
            "t_importSubject#0": FINISHED,
            "t_scorePage#0": FINISHED,
            "t_report#0": FINISHED,
            "t_retrying#2": FINISHED,
            "t_skipped#0": TaskInstance.STATUS_SKIPPED,
        },
        database_workers,
    )
    stored = DatabaseStorageBackend(uid, using="pg")
    assert stored["t_importSubject#0"].metadata[TaskInstance.META_RESULT]["subject_id"] == 7
    assert stored.latest_kwargs["t_scorePage"]["page"] == 1


def test_an_async_task_body_runs_on_a_celery_worker(redis_workers, redis_app, celery_session):
    manager = celery_session(redis_app)
    manager.update_configuration(
        {"t_asyncScore": {"after": ["pageSaved"], "run": "celery_tests.async_score"}}
    )
    manager.fire("pageSaved", {"page": 3})
    wait_until(statuses(manager), {"t_asyncScore#0": FINISHED}, redis_workers)
    found = result(manager, "t_asyncScore#0")
    assert (found["page"], found["noted"], found["instance"]) == (3, 3, "t_asyncScore#0")
    assert found["hostname"] in {worker.hostname for worker in redis_workers.values()}
    assert instance(manager, "t_asyncScore#0").metadata["noted"] == 3
