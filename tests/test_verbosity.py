"""Task tracebacks reach the operator's stderr only with ``-v 2``, on both entry points."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.ops_support import ROOT, subprocess_run
from triggers import CacheStorageBackend, TriggerManager

BOOM = {"behave": {"raise": "boom"}}


@pytest.fixture
def settings_path(tmp_path):
    """A settings module that registers the tests' tasks (as a project's apps would)."""
    (tmp_path / "verbose_settings.py").write_text(
        "from tests.settings import *  # noqa: F403\nimport tests.runner_support  # noqa: F401\n"
    )
    return f"{tmp_path}:{ROOT}"


@pytest.fixture
def failing(uid):
    """A session whose task t always fails: t#0 failed, so a replay fails again."""
    require_service("redis")
    manager = TriggerManager(CacheStorageBackend(uid, cache="redis"))
    manager.update_configuration(
        {"t": {"after": ["go"], "run": "tests.behave", "using": "sync", "withParams": BOOM}}
    )
    manager.fire("go", {})
    return uid


def _python_m(path, *args):
    return subprocess_run(sys.executable, "-m", "triggers", *args, PYTHONPATH=path)


def _django_admin(path, *args):
    admin = str(Path(sys.executable).with_name("django-admin"))
    return subprocess_run(admin, "triggers", *args, PYTHONPATH=path)


def _replay_json(entry, path, uid, *options):
    """``replay <uid> t#0 --cache redis --json`` by ``entry``, with ``options`` after ``--json``."""
    return entry(
        path, "replay", uid, "t#0", "--cache", "redis", "--json", *options,
        "--settings", "verbose_settings",
    )


@pytest.mark.parametrize("entry", [_python_m, _django_admin])
def test_json_stays_json_and_stderr_has_no_traceback_by_default(failing, settings_path, entry):
    done = _replay_json(entry, settings_path, failing)
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    assert report["instances"]["t#1"] == {"status": "failed", "error": "ValueError: boom"}
    assert "Traceback" not in done.stderr
    assert "task instance t#1 failed (its traceback: -v 2, or show --json)" in done.stderr


@pytest.mark.parametrize("entry", [_python_m, _django_admin])
def test_verbosity_2_prints_the_tasks_traceback(failing, settings_path, entry):
    done = _replay_json(entry, settings_path, failing, "-v", "2")
    assert done.returncode == 3, done.stderr
    json.loads(done.stdout)
    assert "Traceback (most recent call last)" in done.stderr
    assert "ValueError: boom" in done.stderr


def test_verbosity_before_the_command_too(failing, settings_path):
    done = _python_m(
        settings_path,
        "-v",
        "2",
        "replay",
        failing,
        "t#0",
        "--cache",
        "redis",
        "--settings",
        "verbose_settings",
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback (most recent call last)" in done.stderr


def test_a_verbosity_that_is_none_is_refused(failing, settings_path):
    done = _python_m(
        settings_path, "replay", failing, "t#0", "-v", "7", "--settings", "verbose_settings"
    )
    assert done.returncode == 2
    assert "invalid choice: 7" in done.stderr
