"""The tasks of the test project; each result says where and how it ran.

``ImportSubject``, ``RetryTwice`` and ``SkipSelf`` are written as in
Triggers 2.x (TriggerTask subclasses with ``_run``); ``score_page`` and
``flaky`` as this package writes tasks (``@task``).
"""

from __future__ import annotations

from typing import Any

import tests.run_log_tasks  # noqa: F401  (the tasks that log each execution, for tests/celery/test_run_ownership.py)
import triggers.testing  # noqa: F401  (registers PassThruTask, which t_report runs)
from triggers.task import TaskContext, TriggerTask, task

from .config import QUEUE_IMPORTS


def where() -> dict[str, Any]:
    """How the running Celery task was delivered: its queue, worker, retries, and whether it had an eta."""
    from celery import current_task

    request = current_task.request
    return {
        "queue": (request.delivery_info or {}).get("routing_key"),
        "hostname": request.hostname,
        "retries": request.retries,
        "eta": request.eta is not None,
    }


class ImportSubject(TriggerTask):
    name = "celery_tests.import_subject"
    # A Celery task option on the class, as on a 2.x task (itself a Celery task).
    queue = QUEUE_IMPORTS

    def _run(self, context: TaskContext) -> dict[str, Any]:
        return {"subject_id": context.trigger_kwargs["sessionStarted"]["subject_id"], **where()}


@task("celery_tests.score_page")
def score_page(context: TaskContext) -> dict[str, Any]:
    page = context.trigger_kwargs["pageSaved"]["page"]
    return {"page": page, "score": 10 * page, **where()}


@task("celery_tests.flaky")
def flaky(context: TaskContext) -> dict[str, Any]:
    if not context.trigger_kwargs.get("t_importSubject", {}).get("fixed"):
        raise RuntimeError("the subject is not ready")
    return {"fixed": True, **where()}


class RetryTwice(TriggerTask):
    name = "celery_tests.retry_twice"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        if self.request.retries < 2:
            self.retry(cooldown=0.2, metadata={"attempt": self.request.retries})
        return where()


class SkipSelf(TriggerTask):
    name = "celery_tests.skip_self"

    def _run(self, context: TaskContext) -> None:
        self.skip({"reason": "nothing to import"})


@task("celery_tests.async_score")
async def async_score(context: TaskContext) -> dict[str, Any]:
    """An ``async def`` body: run to completion by the worker, with the same context."""
    import asyncio

    await asyncio.sleep(0)
    page = context.trigger_kwargs["pageSaved"]["page"]
    noted = await context.manager.aupdate_instance_metadata(context.instance_name, {"noted": page})
    return {
        "page": page,
        "noted": noted.metadata["noted"],
        "instance": context.instance_name,
        **where(),
    }
