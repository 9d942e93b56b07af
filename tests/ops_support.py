"""Sessions and helpers for the tests of the operator commands.

The sessions are the demo's questionnaire (``triggers.demo``), run on the
``sync`` runner so that every task has run when a fire returns.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.storage_support import keys_of, raw, tasks_version
from triggers import CacheStorageBackend, TriggerManager, demo

ROOT = Path(__file__).resolve().parent.parent

#: the demo's workflow, every task run in the thread that fires
WORKFLOW = {name: {**definition, "using": "sync"} for name, definition in demo.WORKFLOW.items()}
PAGE = {"page": 1, "answers": {"q1": 4}, "userAgent": demo.USER_AGENT}
#: a long time ago, in naive UTC as the manager writes timestamps
LONG_AGO = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(hours=3)


def questionnaire(uid: str, alias: str, fail: tuple[str, ...] = (), layout: str | None = None) -> str:
    """The questionnaire run to its end in cache ``alias``; the first run of each task in ``fail`` fails."""
    return questionnaire_in(CacheStorageBackend(uid, cache=alias, layout=layout), fail)


def questionnaire_in(storage: Any, fail: tuple[str, ...] = ()) -> str:
    """The questionnaire run to its end in ``storage`` (any backend); the first run of
    each task in ``fail`` fails. Returns the session's uid."""
    demo.FAIL_FIRST_RUN.clear()
    demo.FAIL_FIRST_RUN.update(fail)
    try:
        manager = TriggerManager(storage)
        manager.update_configuration(WORKFLOW)
        manager.fire("firstPageReceived", {"respondent": demo.RESPONDENT})
        manager.fire("pageReceived", PAGE)
        manager.fire("questionnaireComplete", {"pages": 1})
    finally:
        demo.FAIL_FIRST_RUN.clear()
    return str(storage.uid)


def add_stuck_instance(uid: str, alias: str, status: str = "scheduled", when: datetime = LONG_AGO) -> str:
    """An instance left ``status`` since ``when``, written through the storage under its lock."""
    storage = CacheStorageBackend(uid, cache=alias)
    with storage.acquire_lock():
        stamps = {"created": when, status: when, "lastModified": when}
        instance = storage.create_instance(
            "t_importResponses",
            status=status,
            kwargs={"t_importSubject": {"subjectId": 1}, "pageReceived": PAGE},
            metadata={"timestamps": stamps},
        )
        storage.save()
    return instance.name


def command(*args: str) -> str:
    """``manage.py triggers ARGS`` through call_command; its standard output."""
    out = io.StringIO()
    call_command("triggers", *args, stdout=out)
    return out.getvalue()


def refused(*args: str) -> str:
    """The message of a command that must refuse its input with exit status 2."""
    with pytest.raises(CommandError) as caught:
        command(*args)
    assert caught.value.returncode == 2, caught.value
    return str(caught.value)


def stored(uid: str, alias: str) -> dict[str, Any]:
    """Every stored value of the session, read past the storage layer."""
    store = CacheStorageBackend(uid, cache=alias)
    try:
        names = list(CacheStorageBackend(uid, cache=alias).instances)
    except Exception:
        names = []
    values = raw(alias, keys_of(store, names))
    version = tasks_version(alias, store)
    if version is not None:
        values.update(raw(alias, [store.tasks_key(version)]))
    return values


def environment(**extra: str) -> dict[str, str]:
    """The environment of a subprocess that imports this worktree and the tests."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def subprocess_run(*argv: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=environment(**env),
        timeout=300,
    )


def python_m(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m triggers ARGS`` in a new process."""
    return subprocess_run(sys.executable, "-m", "triggers", *args, **env)


def django_admin(*args: str) -> subprocess.CompletedProcess[str]:
    """``django-admin triggers ARGS --settings tests.settings`` in a new process."""
    admin = Path(sys.executable).with_name("django-admin")
    return subprocess_run(str(admin), "triggers", *args, "--settings", "tests.settings")


def assert_one_line_refusal(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit status 2, one line on stderr (no traceback), naming each of ``words``."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]
