"""docs/settings.rst and docs/checks.rst list everything the code reads and reports:
every setting of triggers.conf.DEFAULTS has a section, every check id in
triggers/checks/ has one, and the messages the checks page quotes are the
ones the checks give."""

from __future__ import annotations

import re
from pathlib import Path

from django.core import checks
from django.test import override_settings

from triggers.conf import DEFAULTS, FROM_ENVIRONMENT

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_PAGE = (ROOT / "docs" / "settings.rst").read_text(encoding="utf-8")
CHECKS_PAGE = (ROOT / "docs" / "checks.rst").read_text(encoding="utf-8")
CHECKS_SOURCE = "\n".join(
    path.read_text(encoding="utf-8") for path in sorted((ROOT / "triggers" / "checks").glob("*.py"))
)


def sections(page: str) -> set[str]:
    """The titles of a page's sections (a line followed by a line of - or =)."""
    lines = page.splitlines()
    return {
        title
        for title, under in zip(lines, lines[1:])
        if title and re.fullmatch(r"[-=]{3,}", under) and len(under) >= len(title)
    }


def test_every_setting_has_a_section():
    assert set(DEFAULTS) <= sections(SETTINGS_PAGE)


def test_every_setting_read_anywhere_is_a_default():
    read = set()
    for path in (ROOT / "triggers").rglob("*.py"):
        read |= set(
            re.findall(r"get_setting\(\s*\"(TRIGGERS_\w+)\"", path.read_text(encoding="utf-8"))
        )
    assert read <= set(DEFAULTS)


def test_the_environment_variables_are_named():
    for name in FROM_ENVIRONMENT:
        assert name in SETTINGS_PAGE.split("Environment variables", 1)[1]


def test_every_check_id_has_a_section():
    ids = set(re.findall(r'id="(triggers\.[EWI]\d{3})"', CHECKS_SOURCE))
    assert ids and ids <= sections(CHECKS_PAGE)


def unwrapped(text: str) -> str:
    return " ".join(text.split())


def quoted(check_id: str) -> str:
    """The message block of a check's section, joined into one line."""
    section = CHECKS_PAGE.split(f"\n{check_id}\n", 1)[1]
    block = section.split(".. code-block:: text", 1)[1].split("\nFix\n", 1)[0]
    return unwrapped(block)


def message(check_id: str) -> str:
    [found] = [m for m in checks.run_checks(tags=["triggers"]) if m.id == check_id]
    return unwrapped(f"?: ({found.id}) {found.msg}")


def with_hint(check_id: str) -> str:
    """The message and its hint, as manage.py check prints them (joined into one line)."""
    [found] = [m for m in checks.run_checks(tags=["triggers"]) if m.id == check_id]
    return unwrapped(f"?: ({found.id}) {found.msg} HINT: {found.hint}")


def test_the_quoted_messages_are_the_real_ones(settings, tmp_path):
    locmem = "django.core.cache.backends.locmem.LocMemCache"
    with override_settings(TRIGGERS_CACHE_ALIAS="sessions"):
        assert quoted("triggers.E001").startswith(message("triggers.E001"))
    with override_settings(TRIGGERS_CACHE_LAYOUT="sharded"):
        assert quoted("triggers.E004").startswith(message("triggers.E004"))
    memcached = {
        "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
        "LOCATION": "127.0.0.1:11211",
    }
    with override_settings(TRIGGERS_CACHE_LAYOUT="paged", CACHES={"default": memcached}):
        assert with_hint("triggers.E004") in quoted("triggers.E004")
    with override_settings(TRIGGERS_DEFAULT_RUNNER="rq"):
        assert quoted("triggers.E003").startswith(message("triggers.E003"))
    with override_settings(CACHES={"default": {"BACKEND": locmem, "LOCATION": "docs-w001"}}):
        assert quoted("triggers.W001").startswith(message("triggers.W001"))
    filebased = {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(tmp_path),
    }
    with override_settings(CACHES={"default": filebased}):
        assert quoted("triggers.E002").startswith(message("triggers.E002"))
    redis = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://x/0"}
    with override_settings(
        CACHES={**settings.CACHES, "redis": redis}, TRIGGERS_CACHE_ALIAS="redis"
    ):
        assert quoted("triggers.W002").startswith(message("triggers.W002"))


def test_the_quoted_messages_of_the_setup_checks_are_the_real_ones(settings, plugin):
    """The messages of triggers.checks' setup checks, as docs/checks.rst quotes them."""
    large = {"OPTIONS": {"MAX_ENTRIES": 100_000}}
    locmem = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", **large}
    settings.TRIGGERS_SESSION_TIMEOUT = 3600
    with override_settings(TRIGGERS_SESSION_TIMEOUT=0):
        assert quoted("triggers.E006") == with_hint("triggers.E006")
    with override_settings(TRIGGERS_CELERY_APP="proj.celery.ap"):
        assert quoted("triggers.E007") == with_hint("triggers.E007")
    drivers = {"myproject.caches.MyCache": "myproject.locking.MyDriver"}
    with override_settings(TRIGGERS_LOCK_DRIVERS=drivers):
        assert quoted("triggers.E009") == with_hint("triggers.E009")
    with override_settings(CACHES={"default": locmem}, TRIGGERS_DEFAULT_RUNNER="recording"):
        assert quoted("triggers.E005") == with_hint("triggers.E005").replace(
            "'recording'", "'celery'"
        )
    del settings.TRIGGERS_SESSION_TIMEOUT
    with override_settings(CACHES={"default": locmem}):
        assert quoted("triggers.I002") == with_hint("triggers.I002")
