"""The system checks that look at a real Celery app: eager mode (W003), the app
setting (E007), and a sessions' cache that workers cannot see (E005)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks

from tests.celery_app.config import make_app
from tests.celery_probe import probe

LOCMEM_ALIAS = "locmem"


def messages() -> dict[str, str]:
    found = checks.run_checks(tags=["triggers"])
    return {m.id: m.msg for m in found if m.id.startswith("triggers.")}


@pytest.fixture
def celery_settings(settings: Any) -> Any:
    """Tasks on Celery, sessions in Redis, a lifetime chosen: a project that passes."""
    settings.TRIGGERS_DEFAULT_RUNNER = "celery"
    settings.TRIGGERS_CACHE_ALIAS = "redis"
    settings.TRIGGERS_SESSION_TIMEOUT = 3600
    return settings


def test_a_configured_app_that_is_not_eager_passes(celery_settings: Any) -> None:
    celery_settings.TRIGGERS_CELERY_APP = make_app("memory://", main="checks-lazy")
    assert messages() == {}


def test_the_app_named_by_its_dotted_path_passes(celery_settings: Any) -> None:
    celery_settings.TRIGGERS_CELERY_APP = "tests.celery_app.celery:app"
    assert messages() == {}


def test_an_eager_app_is_a_warning_unless_allowed(celery_settings: Any) -> None:
    app = make_app("memory://", main="checks-eager", task_always_eager=True)
    celery_settings.TRIGGERS_CELERY_APP = app
    found = messages()
    assert list(found) == ["triggers.W003"]
    assert "'checks-eager'" in found["triggers.W003"]
    celery_settings.TRIGGERS_CELERY_ALLOW_EAGER = True
    assert messages() == {}


def test_a_per_process_cache_with_celery_workers_is_an_error(celery_settings: Any) -> None:
    celery_settings.TRIGGERS_CELERY_APP = make_app("memory://", main="checks-workers")
    celery_settings.TRIGGERS_CACHE_ALIAS = LOCMEM_ALIAS
    found = messages()
    assert list(found) == ["triggers.E005"]
    assert "'celery' runner" in found["triggers.E005"] and "LocMemCache" in found["triggers.E005"]


def test_an_eager_app_allowed_runs_tasks_here_so_a_per_process_cache_passes(
    celery_settings: Any,
) -> None:
    app = make_app("memory://", main="checks-eager-locmem", task_always_eager=True)
    celery_settings.TRIGGERS_CELERY_APP = app
    celery_settings.TRIGGERS_CELERY_ALLOW_EAGER = True
    celery_settings.TRIGGERS_CACHE_ALIAS = LOCMEM_ALIAS
    assert messages() == {}


def test_a_project_with_a_celery_app_and_locmem_sessions_fails_its_check() -> None:
    """A 2.x-style project: no runner set, a Celery app made at start-up (so tasks
    go to Celery), sessions in LocMem. ``manage.py check`` used to pass it."""
    reported = probe(
        """
        import django
        django.setup()
        import tests.celery_app.celery  # the app, as <project>/__init__.py imports it
        from django.core import checks
        from django.test import override_settings

        with override_settings(TRIGGERS_SESSION_TIMEOUT=60):
            found = {m.id: m.msg for m in checks.run_checks(tags=["triggers"])}
        report(found=found)
        """
    )
    assert reported["name"] == "celery" and not reported["from_setting"]
    assert "'celery' runner" in reported["found"]["triggers.E005"]
    assert "LocMemCache" in reported["found"]["triggers.E005"]
