"""Celery is optional: without it every module imports, the demo runs, and nothing reaches for it.

Each case runs in a fresh Python (``tests.celery_probe``); ``hide_celery``
makes Celery unfindable there, whether or not it is installed here.
"""

from __future__ import annotations

import importlib.util

from tests.celery_probe import probe

EVERYTHING = """
import importlib, pkgutil
import triggers

from triggers.__main__ import main

assert main(["demo"]) == 0  # configures Django itself
modules = [info.name for info in pkgutil.walk_packages(triggers.__path__, "triggers.")]
for name in modules:
    importlib.import_module(name)
"""


def test_without_celery_every_module_imports_and_the_demo_runs():
    reported = probe(
        EVERYTHING
        + """
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import DispatchFailed
from triggers.testing import PassThruTask

manager = TriggerManager(CacheStorageBackend("no-celery"))
manager.update_configuration({"t": {"after": ["go"], "run": PassThruTask.name, "using": "celery"}})
try:
    manager.fire("go")
except DispatchFailed:
    pass
failed = CacheStorageBackend("no-celery")["t#0"]
report(modules=len(modules), status=failed.status, error=failed.metadata["exceptionType"],
       info=failed.metadata["exceptionInfo"].splitlines()[-1])
""",
        hide_celery=True,
        settings=None,
    )
    assert "t_importSubject#0" in reported["stdout"]  # the demo's table
    assert reported["modules"] > 20
    assert reported["celery_modules"] == []
    # Tasks run in threads, and the check says why.
    assert (reported["name"], reported["reason"]) == ("threading", "Celery is not installed")
    assert reported["I001"] == [
        "Tasks whose configuration has no 'using' run on the 'threading' runner:"
        " Celery is not installed."
    ]
    # A task that asks for Celery fails to start, saying what to install.
    assert reported["status"] == "failed"
    assert reported["error"] == "triggers.celery_tasks.CeleryUnavailable"
    assert "pip install '.[celery]'" in reported["info"]


def test_where_celery_is_installed_the_package_imports_only_its_exceptions():
    """``MaxRetriesExceeded`` is also Celery's ``MaxRetriesExceededError`` there (as in 2.x),
    so ``celery.exceptions`` is imported; nothing that makes or finds an app is."""
    reported = probe(EVERYTHING + "\nreport()\n", settings=None)
    loaded = reported["celery_modules"]
    if importlib.util.find_spec("celery") is None:
        assert loaded == []  # not installed here (the celery environment has it)
    else:
        assert "celery.exceptions" in loaded
    assert [m for m in loaded if m.startswith(("celery._state", "celery.app"))] == []
    assert reported["name"] == "threading"  # no app: the default stays threading


def test_the_check_says_which_runner_is_the_default_when_no_setting_does(settings):
    from django.core import checks

    from triggers.conf import default_runner_choice

    def infos():
        return [m for m in checks.run_checks(tags=["triggers"]) if m.id == "triggers.I001"]

    assert infos() == []  # the suite's settings name the runner
    del settings.TRIGGERS_DEFAULT_RUNNER
    choice = default_runner_choice()
    [message] = infos()
    assert message.level == checks.INFO
    assert message.msg == (
        f"Tasks whose configuration has no 'using' run on the {choice.name!r} runner:"
        f" {choice.reason}."
    )
    assert "TRIGGERS_DEFAULT_RUNNER" in message.hint
