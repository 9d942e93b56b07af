"""The task side's earlier module paths are the modules of ``triggers.tasks`` themselves."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "triggers"

#: each earlier path, and the module it now is
EARLIER_PATHS = {
    "triggers.celery_runner": "triggers.tasks.celery_runner",
    "triggers.celery_state": "triggers.tasks.celery_state",
    "triggers.celery_tasks": "triggers.tasks.celery_tasks",
    "triggers.context": "triggers.tasks.context",
    "triggers.execution": "triggers.tasks.execution",
    "triggers.payload": "triggers.tasks.payload",
    "triggers.runner_base": "triggers.tasks.runner_base",
    "triggers.runners": "triggers.tasks.runners",
    "triggers.task_classes": "triggers.tasks.classes",
    "triggers.task_outcomes": "triggers.tasks.outcomes",
}
#: the earlier paths that Triggers 2.x had (the others were new in 3.0)
TWO_X_PATHS = {"triggers.runners"}


@pytest.mark.parametrize("old, new", sorted(EARLIER_PATHS.items()))
def test_an_earlier_path_is_the_module_itself(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


def test_the_same_objects_under_either_path():
    from triggers.runners import BaseTaskRunner, ThreadingTaskRunner
    from triggers.task_classes import TriggerTask
    from triggers.tasks.classes import TriggerTask as MovedTriggerTask
    from triggers.tasks.runners import BaseTaskRunner as MovedBase
    from triggers.tasks.runners import ThreadingTaskRunner as MovedRunner

    assert (ThreadingTaskRunner, BaseTaskRunner, TriggerTask) == (
        MovedRunner,
        MovedBase,
        MovedTriggerTask,
    )


def test_patching_an_earlier_path_patches_the_module(monkeypatch):
    import triggers.task_classes
    import triggers.tasks.classes

    def get_task(name):
        raise AssertionError(name)

    monkeypatch.setattr(triggers.task_classes, "get_task", get_task)
    assert triggers.tasks.classes.get_task is get_task


@pytest.mark.parametrize("old", sorted(EARLIER_PATHS))
def test_an_earlier_path_imports_first(old):
    """Imported first in a fresh process, an earlier path is the moved module too."""
    new = EARLIER_PATHS[old]
    code = f"import sys, {old}, {new}\nassert sys.modules[{old!r}] is {new}\n"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_only_the_2x_paths_carry_the_shim_marker():
    marked = {
        old
        for old in EARLIER_PATHS
        if "2.x shim" in (PACKAGE / f"{old.split('.')[1]}.py").read_text(encoding="utf-8")
    }
    assert marked == TWO_X_PATHS


def test_the_loggers_keep_their_names():
    from triggers.tasks import execution, runners

    assert runners.logger.name == "triggers.runners"
    assert execution.logger.name == "triggers.task"
