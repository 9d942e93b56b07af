"""Running one task instance: what every runner finally calls.

:func:`run_task` takes the payload a runner prepared, rebuilds the manager
in whatever thread or process it runs in, resolves the task by name among
registered tasks, runs the body and records every outcome on the instance:
``running`` first, then ``finished`` (and the cascade of its result),
another status, a retry, or a failure with the error recorded.
"""

from __future__ import annotations

import functools
import inspect
import logging
import pickle
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import DispatchFailed, InstanceMissing, RunSuperseded, UnknownInstance, safe_repr
from ..types import TaskInstance
from . import classes as task_classes
from .awaiting import run_awaitable
from .classes import MaxRetriesExceeded, Retry, StatusChange, TriggerTask
from .context import TaskContext
from .ownership import RunFence, log_superseded
from .payload import TaskPayload

__all__ = ["run_task"]

logger = logging.getLogger("triggers.task")


def _exception_metadata(
    exc: BaseException, context: TaskContext, task_name: str, phase: str
) -> dict[str, Any]:
    """What a failure records: ``exceptionContext`` is exactly what the exception carried
    (as in 2.x); where it happened is under ``failure``; ``logLevel`` is only what the task
    logged, so a failure alone does not make the logs unresolved (as in 2.x)."""
    return {
        TaskInstance.META_EXCEPTION_TYPE: f"{type(exc).__module__}.{type(exc).__qualname__}",
        TaskInstance.META_EXCEPTION_INFO: "".join(traceback.format_exception(exc)),
        TaskInstance.META_EXCEPTION_CONTEXT: _attached_context(exc),
        TaskInstance.META_FAILURE: {
            "task": task_name,
            "instance": context.instance_name,
            "phase": phase,
            "kwargs": safe_repr(context.trigger_kwargs),
        },
        TaskInstance.META_LOG_LEVEL: context.log_level,
    }


def _attached_context(exc: BaseException) -> dict[str, Any]:
    """What ``triggers.exceptions.with_context`` attached to ``exc`` (as ``exc.context``),
    each value kept if it can be stored, else as its short repr."""
    attached = getattr(exc, "context", None)
    if not isinstance(attached, Mapping):
        return {}
    kept: dict[str, Any] = {}
    for key, value in attached.items():
        try:
            pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        except Exception:
            value = safe_repr(value)
        kept[str(key)] = value
    return kept


def _mark_failed(
    context: TaskContext,
    exc: BaseException,
    task_name: str,
    phase: str,
    extra: Mapping[str, Any] | None = None,
) -> None:
    metadata = _exception_metadata(exc, context, task_name, phase)
    if extra:
        metadata.update(extra)
    try:
        context.manager.update_instance_status(
            context.instance_name, TaskInstance.STATUS_FAILED, metadata
        )
    except RunSuperseded:
        raise  # the run's instance was taken from it: nothing of its failure is recorded
    except Exception:
        logger.exception("could not mark %s failed after %r", context.instance_name, exc)


def run_task(
    payload: TaskPayload | Mapping[str, Any],
    on_retry: Callable[[Retry], object] | None = None,
    handoff: object = None,
) -> dict[str, Any] | None:
    """Run the instance a runner's payload names, recording every outcome on it.

    Returns the result of a finished run, else None; ``on_retry`` is told of a
    retry once its replay is scheduled (the Celery task reports it to Celery).
    Re-raises what the task body raised (after recording it), and raises UnknownTaskError for a
    ``run`` that names no registered task and MaxRetriesExceeded for a retry
    too many; a runner logs those. RunSuperseded (logged here too) when the
    instance was taken from this run before it ended: nothing of its end is
    recorded (see :mod:`.ownership`). ``handoff``: the state the runner sent
    with the task (a storage's :meth:`handoff` token), where the run starts if
    it verifies.
    """
    try:
        return _run(TaskContext.from_payload(payload), on_retry, handoff)
    except RunSuperseded as superseded:
        log_superseded(superseded)
        raise


def _run(
    context: TaskContext, on_retry: Callable[[Retry], object] | None, handoff: object = None
) -> dict[str, Any] | None:
    name = context.instance_name
    manager = context.manager  # on the one storage object of this run
    fence = RunFence(context.storage_uid, name)
    _prepare_storage(manager.storage, name, handoff)
    try:
        instance, task_cls = manager.change_instance(
            name, functools.partial(_begin, context, fence)
        )
    except UnknownInstance as exc:
        if isinstance(exc, InstanceMissing) or exc.name != name:
            raise
        raise InstanceMissing(name, exc.uid, _storage_words(manager.storage)) from None
    except _NotScheduled as not_scheduled:
        # Delivered twice, or the operator moved it on meanwhile: never run twice.
        logger.warning("not running %s: it is %s, not scheduled", name, not_scheduled.status)
        return None
    task_name = instance.config.run
    if isinstance(task_cls, BaseException):
        raise task_cls  # recorded on the instance with its commit
    manager.run_owner = fence  # every status change of the instance from now on is this run's

    task_obj = task_cls(context)
    context.task = task_obj

    try:
        result = task_obj.run_body(instance)
        if inspect.isawaitable(result):  # an async body
            result = run_awaitable(result)
    except Retry as retry:  # before StatusChange: a Retry is one
        _retry(context, task_obj, retry, instance)
        if on_retry is not None:
            on_retry(retry)
        return None
    except StatusChange as change:
        metadata = dict(change.metadata)
        metadata.setdefault(TaskInstance.META_LOG_LEVEL, context.log_level)
        manager.update_instance_status(name, change.status, metadata)
        return None
    except BaseException as exc:
        _mark_failed(context, exc, task_name, "run")
        raise

    return _finish(context, task_name, result)


def _prepare_storage(storage: object, name: str, handoff: object) -> None:
    """Tell the storage what the run reads first: the instance's record (read with
    the head), and the state the runner handed with it, if any."""
    expect = getattr(storage, "expect_instances", None)
    if expect is not None:
        expect([name])  # a storage that reads its head first reads this record with it
    take = getattr(storage, "take_handoff", None)
    if handoff is not None and take is not None:
        take(handoff, name)


def _storage_words(storage: Any) -> str:
    """The storage a worker looked in, for an operator: its backend and where it keeps sessions."""
    where = ", ".join(f"{key}={value!r}" for key, value in storage.rebuild_kwargs().items())
    cache = getattr(storage, "cache", None)
    if cache is not None:
        alias = getattr(storage, "cache_alias", None)
        where = f"cache {alias!r} ({type(cache).__name__})" if alias else type(cache).__name__
    return f"{type(storage).__name__}" + (f" [{where}]" if where else "")


def _finish(context: TaskContext, task_name: str, result: Any) -> dict[str, Any]:
    """Record a run that returned ``result``: finished, and its result fired."""
    name = context.instance_name
    if result is None:
        result = {}
    if not isinstance(result, Mapping):
        error = TypeError(
            f"task {task_name!r} returned {safe_repr(result)} ({type(result).__name__})"
            " instead of a dict"
        )
        _mark_failed(context, error, task_name, "result")
        raise error
    finished: dict[str, Any] = dict(result)
    fence = context.manager.run_owner
    if isinstance(fence, RunFence):
        fence.result = finished
    try:
        # Finished and its result fired, in one commit.
        context.manager.update_instance_status(
            name,
            TaskInstance.STATUS_FINISHED,
            {TaskInstance.META_RESULT: finished, TaskInstance.META_LOG_LEVEL: context.log_level},
            cascade=True,
            cascade_kwargs=finished,
        )
    except DispatchFailed:
        # The instances that could not start were marked failed; this one did finish.
        logger.exception("cascade of %s could not start every task", name)
    except RunSuperseded:
        raise
    except Exception as exc:  # an unstorable result, most likely
        _mark_failed(context, exc, task_name, "result")
        raise
    return finished


class _NotScheduled(Exception):
    """The instance to run is not scheduled (any more): the run does not start."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


def _begin(
    context: TaskContext, fence: RunFence, instance: TaskInstance
) -> tuple[TaskInstance, type[TriggerTask] | BaseException]:
    """Mark a scheduled instance running, or failed when its task cannot be resolved.

    Runs inside the commit of the run's first step, so it changes only the instance.
    """
    if instance.status != TaskInstance.STATUS_SCHEDULED:
        raise _NotScheduled(instance.status)
    manager = context.manager
    task_name = instance.config.run
    try:
        # Registered tasks only; test helpers widen it through task_fallbacks.
        task_cls = task_classes.get_task(task_name)
    except Exception as exc:
        metadata = _exception_metadata(exc, context, task_name, "resolve")
        manager.set_status(instance, TaskInstance.STATUS_FAILED, metadata)
        return instance, exc
    manager.set_status(
        instance,
        TaskInstance.STATUS_RUNNING,
        {TaskInstance.META_ACTUAL_KWARGS: context.trigger_kwargs, **fence.claim()},
    )
    return instance, task_cls


def _retry(
    context: TaskContext, task_obj: TriggerTask, retry: Retry, instance: TaskInstance
) -> None:
    name = context.instance_name
    task_name = task_obj.name
    retries = task_obj.request.retries
    if retries >= task_obj.max_retries:
        # Raised directly rather than through TriggerTask.retry(): same rule.
        exceeded = MaxRetriesExceeded(task_name, name, retries, task_obj.max_retries)
        exceeded.__cause__ = retry.exc or retry
        _mark_failed(context, exceeded, task_name, "retry", retry.metadata)
        raise exceeded
    error = retry.exc if retry.exc is not None else retry
    _mark_failed(context, error, task_name, "retry", retry.metadata)
    if retry.cooldown and _waits_out_cooldown(context, instance):
        time.sleep(retry.cooldown)
    cooldown = {TaskInstance.META_COOLDOWN: retry.cooldown} if retry.cooldown else None
    context.manager.replay_failed_instance(name, retry.replacement_kwargs, metadata=cooldown)


def _waits_out_cooldown(context: TaskContext, instance: TaskInstance) -> bool:
    """Whether this run waits out the replay's cooldown before scheduling it: not when the
    replay's runner holds it back itself (a broker's countdown), nor when the runner does
    not honour cooldowns (the threading runner under the 2.x test mixin)."""
    try:
        runner = context.manager.runner_for(instance)
    except Exception:  # no runner: the replay fails at dispatch, with the error recorded
        return True
    if getattr(runner, "delays_by_cooldown", False):
        return False
    return bool(getattr(runner, "honours_cooldown", True))
