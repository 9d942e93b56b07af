"""``replay``, ``requeue``, ``skip`` and ``fire``: an operator moving a session on, through the manager.

Each checks its input against the session first (the instance exists and
failed, or is stuck; the trigger is one a task listens to; every task the
action could run in this process is registered here), so a refusal
changes nothing. Tasks that the action schedules on the ``threading`` runner run in
this process; the command waits for them, then reports where each ended.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..manager import TriggerManager
from ..storages.base import BaseTriggerStorage
from ..tasks.runners import ThreadingTaskRunner
from ..types import TaskInstance
from .common import BadInput, FailedAgain, Writer, find_instance, instance_order, write_json
from .registered import reachable, refuse_unregistered
from .requeue import RequeueManager, check_stuck
from .show import error_line

__all__ = ["fire", "replay", "requeue", "skip"]


def _failed(storage: BaseTriggerStorage, name: str, action: str) -> TaskInstance:
    instance = find_instance(storage, name)
    if not instance.can_replay:
        raise BadInput(
            f"instance {name!r} of session {storage.uid!r} is {instance.status};"
            f" only a failed instance can be {action}"
        )
    return instance


def _outcome(storage: BaseTriggerStorage, names: list[str]) -> dict[str, Any]:
    """Where each instance stands now, once this process's task threads are done."""
    ThreadingTaskRunner.join_all()
    storage.invalidate_cache()
    outcome = {}
    for name in sorted(names, key=instance_order):
        instance = storage[name]
        entry: dict[str, Any] = {"status": instance.status}
        if instance.status == TaskInstance.STATUS_FAILED:
            entry["error"] = error_line(instance)
        outcome[name] = entry
    return outcome


def _report(
    out: Writer,
    as_json: bool,
    storage: BaseTriggerStorage,
    summary: str,
    names: list[str],
    **facts: Any,
) -> dict[str, Any]:
    """Print what was done (a summary, then where each instance concerned ended); that, as data."""
    done = {**facts, "uid": storage.uid, "summary": summary, "instances": _outcome(storage, names)}
    if as_json:
        write_json(out, done)
        return done
    out.write(summary + "\n")
    for name, entry in done["instances"].items():
        error = f": {entry['error']}" if entry.get("error") else ""
        out.write(f"  {name}  {entry['status']}{error}\n")
    return done


def replay(
    storage: BaseTriggerStorage,
    name: str,
    out: Writer,
    kwargs: dict[str, Any] | None = None,
    as_json: bool = False,
) -> None:
    """Mark a failed instance replayed and run a clone of it."""
    instance = _failed(storage, name, "replayed")
    _refuse_unregistered_from(storage, instance, "replay")
    manager = TriggerManager(storage)
    try:
        clone = manager.replay_failed_instance(name, replacement_kwargs=kwargs)
    except ValueError as exc:  # it stopped being failed since it was read
        raise BadInput(str(exc)) from None
    summary = f"replayed {name} of session {storage.uid} as {clone.name}"
    if kwargs is not None:
        summary += " with new kwargs"
    names = [name, clone.name]
    done = _report(
        out, as_json, storage, summary, names, action="replay", instance=name, clone=clone.name
    )
    _failed_again(done, name, clone.name)


def _failed_again(done: dict[str, Any], name: str, clone: str) -> None:
    """FailedAgain (exit status 3) when the clone the command ran failed."""
    if done["instances"][clone]["status"] == TaskInstance.STATUS_FAILED:
        raise FailedAgain(f"{clone}, the replay of {name}, failed again")


def _refuse_unregistered_from(
    storage: BaseTriggerStorage, instance: TaskInstance, command: str
) -> None:
    """Refuse if running ``instance`` again (and its cascades) would run an unknown task here."""
    configs = [instance.config, *reachable(storage, [instance.config.name])]
    refuse_unregistered(storage, configs, command)


def requeue(
    storage: BaseTriggerStorage,
    name: str,
    out: Writer,
    stuck_for: float,
    as_json: bool = False,
) -> None:
    """Mark an instance stuck past ``stuck_for`` seconds failed and replay it, in one commit."""
    instance = find_instance(storage, name)
    check_stuck(instance, storage.uid, stuck_for, datetime.now(timezone.utc))
    _refuse_unregistered_from(storage, instance, "requeue")
    manager = RequeueManager(storage, stuck_for)
    clone = manager.requeue(name)
    status, age = manager.requeued_from or (instance.status, 0.0)
    summary = (
        f"requeued {name} of session {storage.uid} ({status} for {age:.0f} s):"
        f" failed it and replayed it as {clone.name}"
    )
    done = _report(
        out,
        as_json,
        storage,
        summary,
        [name, clone.name],
        action="requeue",
        instance=name,
        clone=clone.name,
        was=status,
        stuckSeconds=round(age, 3),
    )
    _failed_again(done, name, clone.name)


def skip(
    storage: BaseTriggerStorage,
    name: str,
    out: Writer,
    cascade: bool = False,
    result: dict[str, Any] | None = None,
    as_json: bool = False,
) -> None:
    """Mark a failed instance skipped; with ``cascade``, fire its task's name with ``result``."""
    instance = _failed(storage, name, "skipped")
    if cascade:
        refuse_unregistered(storage, reachable(storage, [instance.config.name]), "skip")
    before = set(storage.instances)
    manager = TriggerManager(storage)
    try:
        manager.skip_failed_instance(name, cascade=cascade, result=result)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    storage.invalidate_cache()
    caused = [n for n in storage.instances if n not in before]
    summary = f"skipped {name} of session {storage.uid}"
    if cascade:
        summary += f"; fired {instance.config.name}"
        summary += f", which made {len(caused)} new instance(s)" if caused else ""
    names = [name, *caused]
    _report(out, as_json, storage, summary, names, action="skip", instance=name, cascade=cascade)


def fire(
    storage: BaseTriggerStorage,
    trigger: str,
    out: Writer,
    kwargs: dict[str, Any] | None = None,
    as_json: bool = False,
) -> None:
    """Fire a trigger that a task of the session listens to."""
    listening = sorted(
        {t for config in storage.tasks.values() for t in config.after | config.unless}
    )
    if trigger not in listening:
        raise BadInput(
            f"no task of session {storage.uid!r} listens to {trigger!r}"
            f" (triggers: {', '.join(listening) or 'none'})"
        )
    refuse_unregistered(storage, reachable(storage, [trigger]), "fire")
    manager = TriggerManager(storage)
    scheduled = [i.name for i in manager.fire(trigger, kwargs or {})]
    summary = f"fired {trigger} in session {storage.uid}"
    summary += f"; scheduled {', '.join(scheduled)}" if scheduled else "; nothing became ready"
    _report(
        out,
        as_json,
        storage,
        summary,
        scheduled,
        action="fire",
        trigger=trigger,
        scheduled=scheduled,
    )
