"""The command line where the reader goes away, and where the URL is malformed."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.ops_support import environment, python_m, questionnaire

ROOT = Path(__file__).resolve().parent.parent


def _closed_reader(argv, **env):
    """Run ``argv`` with its standard output a pipe nobody reads (closed at once)."""
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=environment(**env)
    )
    process.stdout.close()
    stderr = process.stderr.read().decode()
    return process.wait(timeout=120), stderr


def test_show_into_a_closed_pipe_ends_quietly(uid, settings):
    require_service("redis")
    questionnaire(uid, "redis")
    url = settings.REDIS_URL
    status, stderr = _closed_reader([sys.executable, "-m", "triggers", "show", uid, "--cache", url])
    assert (status, stderr) == (0, "")
    admin = Path(sys.executable).with_name("django-admin")
    status, stderr = _closed_reader(
        [str(admin), "triggers", "show", uid, "--cache", "redis", "--settings", "tests.settings"]
    )
    assert (status, stderr) == (0, ""), stderr


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/abc", "redis://127.0.0.1:6379/1x"])
def test_a_redis_url_with_a_database_that_is_no_number_is_refused(url):
    done = python_m("show", "s", "--cache", url)
    assert done.returncode == 2, done.stderr
    assert "the database of a redis:// URL is a number" in done.stderr
    assert repr(url.rsplit("/", 1)[1]) in done.stderr


def test_replay_exits_3_when_the_replay_failed_again(uid, settings):
    from django.core.management.base import CommandError

    from tests.ops_support import command
    from triggers import CacheStorageBackend, TriggerManager

    settings.TRIGGERS_CACHE_ALIAS = "locmem"
    manager = TriggerManager(CacheStorageBackend(uid, cache="locmem"))
    manager.update_configuration(
        {"t": {"after": ["go"], "run": "tests.behave", "using": "sync", "withParams": {"behave": {"raise": "boom"}}}}
    )
    manager.fire("go", {})
    with pytest.raises(CommandError) as caught:
        command("replay", uid, "t#0", "--cache", "locmem")
    assert caught.value.returncode == 3
    assert "t#1, the replay of t#0, failed again" in str(caught.value)
    stored = CacheStorageBackend(uid, cache="locmem")
    assert (stored["t#0"].status, stored["t#1"].status) == ("replayed", "failed")
