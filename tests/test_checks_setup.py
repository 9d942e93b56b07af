"""The system checks of a project's setup: lifetimes, runners and the caches they
need, the Celery app, the database cache's table, a project without a cache."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import pytest
from django.core import checks
from django.test import override_settings

from tests.celery_probe import probe
from tests.settings import CACHES
from triggers import CacheStorageBackend
from triggers.errors import InvalidArgument

LOCMEM = {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "checks-setup",
    "OPTIONS": {"MAX_ENTRIES": 100_000},
}


def messages(level: int = checks.DEBUG):
    found = checks.run_checks(tags=["triggers"])
    return [(m.id, m.msg) for m in found if m.id.startswith("triggers.") and m.level >= level]


def ids(level: int = checks.DEBUG):
    return [check_id for check_id, _ in messages(level)]


@pytest.fixture(autouse=True)
def session_timeout(settings):
    settings.TRIGGERS_SESSION_TIMEOUT = 3600


# ------------------------------------------------------------- lifetimes


def test_an_unset_session_timeout_says_the_lifetime_sessions_get(settings):
    del settings.TRIGGERS_SESSION_TIMEOUT
    [(check_id, message)] = messages()
    assert check_id == "triggers.I002"
    assert "lives 300 seconds after its last save" in message and "'default'" in message


def test_the_lifetime_said_is_the_cache_timeout(settings):
    del settings.TRIGGERS_SESSION_TIMEOUT
    with override_settings(CACHES={**CACHES, "default": {**LOCMEM, "TIMEOUT": None}}):
        [(check_id, message)] = messages()
    assert check_id == "triggers.I002" and "never expires" in message


@pytest.mark.parametrize("value", [None, 1, 0.5, 7 * 24 * 3600])
def test_a_session_timeout_that_is_set_is_silent(settings, value):
    settings.TRIGGERS_SESSION_TIMEOUT = value
    assert messages() == []


@pytest.mark.parametrize("value", [0, -1, "3600", True, math.inf, math.nan, [60]])
def test_a_bad_session_timeout_is_an_error(settings, value):
    settings.TRIGGERS_SESSION_TIMEOUT = value
    [(check_id, message)] = messages()
    assert check_id == "triggers.E006" and repr(value) in message


# ------------------------------------------------------------- lock drivers


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("tests.sqlite_lock_driver", "'tests.sqlite_lock_driver'"),
        ({"no.such.Cache": "tests.sqlite_lock_driver.Nothing"}, "'no.such.Cache'"),
        (
            {
                "django.core.cache.backends.locmem.LocMemCache": "django.core.cache.backends.base.BaseCache"
            },
            "LockDriver",
        ),
    ],
    ids=["not a dict", "does not import", "not a driver"],
)
def test_bad_lock_drivers_are_an_error_not_a_traceback(settings, value, named):
    settings.TRIGGERS_LOCK_DRIVERS = value
    [(check_id, message)] = messages()
    assert check_id == "triggers.E009" and named in message


# ------------------------------------------------------------- runners


def test_the_default_runner_is_looked_up_through_the_aliases(settings):
    settings.TRIGGERS_DEFAULT_RUNNER = "threading"
    settings.TRIGGERS_RUNNER_ALIASES = {"threading": "rq"}
    [(check_id, message)] = messages()
    assert check_id == "triggers.E003"
    assert "'threading' (served by 'rq' through TRIGGERS_RUNNER_ALIASES)" in message


def test_an_alias_to_a_registered_runner_passes(settings):
    settings.TRIGGERS_DEFAULT_RUNNER = "rq"
    settings.TRIGGERS_RUNNER_ALIASES = {"rq": "sync"}
    assert messages() == []


def test_bad_runner_aliases_are_an_error(settings):
    settings.TRIGGERS_RUNNER_ALIASES = ["celery", "sync"]
    [(check_id, message)] = messages()
    assert check_id == "triggers.E003" and "TRIGGERS_RUNNER_ALIASES must be a dict" in message


def test_celery_as_the_default_runner_where_celery_is_not_installed_is_an_error():
    reported = probe(
        """
        import django
        from django.core import checks
        from django.test import override_settings

        django.setup()

        with override_settings(TRIGGERS_DEFAULT_RUNNER="celery", TRIGGERS_SESSION_TIMEOUT=60):
            found = [(m.id, m.msg) for m in checks.run_checks(tags=["triggers"])]
        report(found=found)
        """,
        hide_celery=True,
        settings="tests.settings",
    )
    [(check_id, message)] = reported["found"]
    assert check_id == "triggers.E003"
    assert message == (
        "TRIGGERS_DEFAULT_RUNNER is 'celery', which needs Celery, and Celery is not installed."
    )


@pytest.mark.usefixtures("plugin")
@pytest.mark.parametrize("cache", ["locmem", "dummy"])
def test_a_per_process_cache_with_a_runner_of_other_processes_is_an_error(settings, cache):
    """A runner that does not say it runs tasks in this process sends them elsewhere."""
    settings.TRIGGERS_DEFAULT_RUNNER = "recording"
    settings.TRIGGERS_CACHE_ALIAS = cache
    found = dict(messages())
    assert "'recording' runner" in found["triggers.E005"] and f"'{cache}'" in found["triggers.E005"]


@pytest.mark.usefixtures("plugin")
def test_the_runner_of_the_per_process_check_follows_the_aliases(settings):
    settings.TRIGGERS_DEFAULT_RUNNER = "threading"
    settings.TRIGGERS_CACHE_ALIAS = "locmem"
    assert messages() == []
    settings.TRIGGERS_RUNNER_ALIASES = {"threading": "recording"}
    assert ids() == ["triggers.E005"]


@pytest.mark.usefixtures("plugin")
@pytest.mark.parametrize("cache", ["redis", "memcached"])
def test_a_shared_cache_with_a_runner_of_other_processes_passes(settings, cache):
    settings.TRIGGERS_DEFAULT_RUNNER = "recording"
    settings.TRIGGERS_CACHE_ALIAS = cache
    assert messages() == []


# ------------------------------------------------------------- Celery app setting


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("no_such_module_anywhere.celery.app", "cannot be imported"),
        ("tests.celery_app.config:no_such_app", "cannot be imported"),
        (42, "neither a Celery app nor its path"),
    ],
)
def test_a_celery_app_setting_that_gives_no_app_is_an_error(settings, value, said):
    settings.TRIGGERS_CELERY_APP = value
    [(check_id, message)] = messages()
    assert check_id == "triggers.E007" and repr(value) in message and said in message


# ------------------------------------------------------------- database cache table


@pytest.mark.db_cache
def test_a_database_cache_without_its_table_is_an_error(settings):
    missing = {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "no_cache_table",
    }
    big = {"OPTIONS": {"MAX_ENTRIES": 100_000}}
    with override_settings(CACHES={**CACHES, "default": {**missing, **big}}):
        [message] = [
            m for m in checks.run_checks(tags=["triggers"]) if m.id.startswith("triggers.")
        ]
    assert message.id == "triggers.E008" and "'no_cache_table'" in message.msg
    assert "createcachetable" in message.hint


SETTINGS_UNREACHABLE_DATABASE = """
SECRET_KEY = "x"
INSTALLED_APPS = ["triggers"]
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "nothing",
                         "HOST": "127.0.0.1", "PORT": 9, "USER": "nobody",
                         "OPTIONS": {"connect_timeout": 3}}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                      "LOCATION": "sessions_cache", "OPTIONS": {"MAX_ENTRIES": 100000}}}
TRIGGERS_SESSION_TIMEOUT = 3600
TRIGGERS_DEFAULT_RUNNER = "threading"
"""


def check_command(tmp_path, settings_text: str) -> subprocess.CompletedProcess[str]:
    """``django-admin check`` in a process of its own, on the given settings module."""
    (tmp_path / "checksettings.py").write_text(textwrap.dedent(settings_text))
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "django", "check", "--settings", "checksettings"]
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_an_unreachable_database_is_said_not_raised(tmp_path):
    pytest.importorskip("psycopg")
    done = check_command(tmp_path, SETTINGS_UNREACHABLE_DATABASE)
    assert done.returncode == 0, done.stderr
    assert "(triggers.W004) Could not look for the table 'sessions_cache'" in done.stderr
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------- no cache at all


def test_a_project_whose_sessions_are_in_the_database_only_gets_no_cache_check(settings):
    settings.TRIGGERS_CACHE_ALIAS = None
    del settings.TRIGGERS_SESSION_TIMEOUT  # no expiry in the database: no I002 either
    unbounded = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://x/0",
    }
    with override_settings(CACHES={"default": {**LOCMEM}, "other": unbounded}):
        assert messages() == []
    # A cache storage must then be told its cache: the setting names none.
    with pytest.raises(InvalidArgument, match="None"):
        CacheStorageBackend("no-cache-alias")
