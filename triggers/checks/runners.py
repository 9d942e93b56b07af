"""Checks of where tasks run: the default runner, and the Celery app it sends through."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from ..conf import default_runner_choice, get_setting, runner_alias
from ..tasks.celery_state import celery_installed


def served_by(name: str) -> tuple[str, Any]:
    """The key that serves runner ``name`` (TRIGGERS_RUNNER_ALIASES) and its class, or None."""
    from ..tasks.runners import task_runners

    target = runner_alias(name)
    return target, (task_runners.get_class(target) if target in task_runners else None)


def default_runner_class() -> Any:
    """The class that runs tasks without ``using``, or None where E003 reports a problem."""
    try:
        runner_class = served_by(get_setting("TRIGGERS_DEFAULT_RUNNER"))[1]
    except (ImproperlyConfigured, TypeError):
        return None
    return None if needs_celery(runner_class) and not celery_installed() else runner_class


def needs_celery(runner_class: Any) -> bool:
    """Whether the runner sends through Celery (the built-in runner or a subclass)."""
    from ..tasks.celery_runner import CeleryTaskRunner

    return isinstance(runner_class, type) and issubclass(runner_class, CeleryTaskRunner)


@checks.register("triggers")
def check_default_runner(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The default runner (through TRIGGERS_RUNNER_ALIASES) is registered and can run here."""
    from ..tasks.runners import task_runners

    name = get_setting("TRIGGERS_DEFAULT_RUNNER")
    try:
        target, runner_class = served_by(name)
    except (ImproperlyConfigured, TypeError) as exc:
        return [
            checks.Error(
                f"The default runner {name!r} cannot be looked up: {exc}",
                hint="Correct TRIGGERS_RUNNER_ALIASES.",
                id="triggers.E003",
            )
        ]
    served = (
        repr(name)
        if target == name
        else f"{name!r} (served by {target!r} through TRIGGERS_RUNNER_ALIASES)"
    )
    if runner_class is None:
        return [
            checks.Error(
                f"TRIGGERS_DEFAULT_RUNNER is {served}, which no 'triggers.runners' entry point"
                " provides.",
                hint=f"Registered runners: {', '.join(task_runners.keys()) or 'none'}.",
                id="triggers.E003",
            )
        ]
    if needs_celery(runner_class) and not celery_installed():
        return [
            checks.Error(
                f"TRIGGERS_DEFAULT_RUNNER is {served}, which needs Celery, and Celery is not"
                " installed.",
                hint="Install the celery extra (pip install '.[celery]' in a checkout), or"
                " choose another runner.",
                id="triggers.E003",
            )
        ]
    return []


@checks.register("triggers")
def check_default_runner_choice(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Without TRIGGERS_DEFAULT_RUNNER, say which runner tasks without ``using`` run on, and why.

    That choice follows the process's setup (whether it has a Celery app), so a project
    upgraded from 2.x learns where its tasks will run; setting the runner silences this.
    """
    choice = default_runner_choice()
    if choice.from_setting:
        return []
    return [
        checks.Info(
            f"Tasks whose configuration has no 'using' run on the {choice.name!r} runner:"
            f" {choice.reason}.",
            hint="Set TRIGGERS_DEFAULT_RUNNER to choose the runner yourself (this message"
            " then goes away).",
            id="triggers.I001",
        )
    ]
