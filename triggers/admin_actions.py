"""The admin's actions on instances: replay, skip, mark logs resolved, re-dispatch.

Each goes through the manager of the instance's session
(``TriggerManager(DatabaseStorageBackend(uid, using=<the admin's alias>))``),
so the session's lock, the signals and the runners apply as for any other
caller. Each selected instance is reported on its own, by a message naming
it and its session: what was done, or why it was refused (an instance that
did not fail cannot be replayed, say). One refusal stops no other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .errors import DispatchFailed, TriggersError, safe_repr
from .manager import TriggerManager
from .models import Instance
from .operations.redispatch import redispatch
from .storages.database import DatabaseStorageBackend

__all__ = ["ACTIONS", "mark_logs_resolved", "redispatch_stuck", "replay", "skip", "skip_cascade"]

logger = logging.getLogger(__name__)

#: an action's work on one instance: what to add to the message once it is done
Operation = Callable[[TriggerManager, str], str]


def run_on_each(
    modeladmin: Any,
    request: HttpRequest,
    queryset: QuerySet[Instance],
    verbs: tuple[str, str],
    operation: Operation,
) -> None:
    """Apply ``operation`` to each selected instance, one manager per session.

    ``verbs`` are the action's verb and its past tense, for the messages.
    """
    rows = queryset.order_by("session__uid", "name").values_list("session__uid", "name")
    by_session: dict[str, list[str]] = {}
    for uid, name in rows:
        by_session.setdefault(uid, []).append(name)
    for uid, names in by_session.items():
        manager = TriggerManager(DatabaseStorageBackend(uid, using=modeladmin.alias))
        for name in names:
            _run_one(request, manager, name, verbs, operation)


def _run_one(
    request: HttpRequest,
    manager: TriggerManager,
    name: str,
    verbs: tuple[str, str],
    operation: Operation,
) -> None:
    verb, done = verbs
    where = f"instance {safe_repr(name)} of session {safe_repr(manager.storage.uid)}"
    try:
        outcome = operation(manager, name)
    except DispatchFailed as exc:  # done, but what it scheduled could not start
        messages.error(request, f"{done} {where}, but {exc}.")
    except TriggersError as exc:
        messages.error(request, f"Could not {verb} {where}: {exc}.")
    except Exception as exc:
        logger.exception("could not %s %s", verb, where)
        messages.error(request, f"Could not {verb} {where}: {safe_repr(exc)}.")
    else:
        messages.success(request, f"{done} {where}{outcome}.")


def _status(manager: TriggerManager, name: str) -> str:
    """Where an instance stands now (read afresh)."""
    storage = manager.storage
    with storage.object_mutex():
        storage.invalidate_cache()
    return storage.get_instance(name).status


def _replay(manager: TriggerManager, name: str) -> str:
    clone = manager.replay_failed_instance(name)
    return f": its clone {safe_repr(clone.name)} is {_status(manager, clone.name)}"


def _skipper(cascade: bool) -> Operation:
    def skip_one(manager: TriggerManager, name: str) -> str:
        instance = manager.skip_failed_instance(name, cascade=cascade)
        if cascade:
            return f", firing its task {safe_repr(instance.config.name)} with an empty result"
        return ""

    return skip_one


def _mark_resolved(manager: TriggerManager, name: str) -> str:
    manager.mark_instance_logs_resolved(name)
    return ""


def _redispatch(manager: TriggerManager, name: str) -> str:
    done = redispatch(manager, name)
    if done.clone is None:
        return (
            f": it was scheduled, and was handed again to its runner (now {_status(manager, name)})"
        )
    return (
        f": it was running, its worker lost; it was marked failed and replayed as"
        f" {safe_repr(done.clone)} (now {_status(manager, done.clone)})"
    )


@admin.action(description="Replay the selected failed instances", permissions=["operate"])
def replay(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Instance]) -> None:
    run_on_each(modeladmin, request, queryset, ("replay", "Replayed"), _replay)


@admin.action(description="Skip the selected failed instances", permissions=["operate"])
def skip(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Instance]) -> None:
    run_on_each(modeladmin, request, queryset, ("skip", "Skipped"), _skipper(False))


@admin.action(
    description="Skip the selected failed instances and cascade (fire their task's name)",
    permissions=["operate"],
)
def skip_cascade(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Instance]) -> None:
    run_on_each(
        modeladmin, request, queryset, ("skip with cascade", "Skipped with cascade"), _skipper(True)
    )


@admin.action(
    description="Mark the logs of the selected instances resolved", permissions=["operate"]
)
def mark_logs_resolved(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Instance]) -> None:
    verbs = ("resolve the logs of", "Resolved the logs of")
    run_on_each(modeladmin, request, queryset, verbs, _mark_resolved)


@admin.action(
    description="Re-dispatch the selected stuck instances (scheduled or running)",
    permissions=["operate"],
)
def redispatch_stuck(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Instance]) -> None:
    run_on_each(modeladmin, request, queryset, ("re-dispatch", "Re-dispatched"), _redispatch)


#: the instance list's actions, in the order its menu shows them
ACTIONS = (replay, skip, skip_cascade, mark_logs_resolved, redispatch_stuck)
