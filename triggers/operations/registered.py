"""Refusing to run here a task this process does not know.

A writing command (``fire``, ``replay``, ``requeue``, ``skip --cascade``)
hands the instances it readies to their runners. A runner that runs tasks
in the command's own process (``sync``, ``threading``) needs each task
registered there; ``python -m triggers ... --cache redis://...`` without
the project's settings has none of the application's tasks, and each run
would only write a failed instance into the session. So the command
checks, before it writes anything, every task its action could run in
this process: those the trigger wakes and, as a finished task fires its
own name, those that cascade from them. A runner that sends tasks
elsewhere (Celery's workers) is not this process's concern.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..manager import TriggerManager
from ..registry import task_runners
from ..storages.base import BaseTriggerStorage
from ..tasks.classes import get_task
from ..tasks.outcomes import UnknownTaskError
from ..types import TaskConfig
from .common import BadInput

__all__ = ["reachable", "refuse_unregistered", "unregistered"]


def reachable(storage: BaseTriggerStorage, triggers: Iterable[str]) -> list[TaskConfig]:
    """The tasks that firing ``triggers`` may run, cascades included, by name."""
    fired, found = set(triggers), {}
    grew = True
    while grew:
        grew = False
        for name, config in storage.tasks.items():
            if name not in found and config.after & fired:
                found[name] = config
                fired.add(name)
                grew = True
    return [found[name] for name in sorted(found)]


def _runs_here(config: TaskConfig, default: str) -> bool:
    try:
        runner = task_runners.get_class(config.using or default)
    except Exception:  # an unknown runner: the manager records that on the instance
        return False
    return bool(getattr(runner, "runs_in_process", False))


def unregistered(storage: BaseTriggerStorage, configs: Iterable[TaskConfig]) -> list[str]:
    """The ``run`` names of ``configs`` that would run in this process unregistered."""
    default = TriggerManager(storage).default_task_runner_name
    missing = set()
    for config in configs:
        if not _runs_here(config, default):
            continue
        try:
            get_task(config.run)
        except UnknownTaskError:
            missing.add(config.run)
    return sorted(missing)


def refuse_unregistered(
    storage: BaseTriggerStorage, configs: Iterable[TaskConfig], command: str
) -> None:
    """BadInput (nothing written) if a task of ``configs`` would run here unregistered."""
    configs = list(configs)
    missing = unregistered(storage, configs)
    if not missing:
        return
    tasks = ", ".join(sorted({c.name for c in configs if c.run in missing}))
    raise BadInput(
        f"{command}: the task(s) {', '.join(missing)} (of {tasks}) would run in this process,"
        " where no such task is registered; nothing was changed. Run the command with the"
        " project's settings, where the tasks are registered: manage.py triggers"
        f" {command} ... (or python -m triggers {command} ... --settings MODULE)"
    )
