"""The system checks that report a misconfigured setup at start-up."""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import override_settings

from tests.settings import CACHES


def triggers_messages():
    return [m for m in checks.run_checks(tags=["triggers"]) if m.id.startswith("triggers.")]


def with_default_cache(**config):
    return override_settings(CACHES={**CACHES, "default": config})


def test_the_test_setup_passes():
    assert triggers_messages() == []


def test_an_alias_missing_from_caches_is_an_error(settings):
    settings.TRIGGERS_CACHE_ALIAS = "nowhere"
    [message] = triggers_messages()
    assert message.id == "triggers.E001" and "'nowhere'" in message.msg


def test_a_cache_that_cannot_be_loaded_is_an_error():
    with with_default_cache(BACKEND="no.such.Backend"):
        [message] = triggers_messages()
    assert message.id == "triggers.E001" and "'default'" in message.msg


@pytest.mark.parametrize("alias", ["file", "dummy"])
def test_a_cache_that_cannot_lock_is_an_error(settings, alias):
    settings.TRIGGERS_CACHE_ALIAS = alias
    [message] = triggers_messages()
    assert message.id == "triggers.E002" and f"'{alias}'" in message.msg


def test_an_unknown_layout_is_an_error(settings):
    settings.TRIGGERS_CACHE_LAYOUT = "sharded"
    [message] = triggers_messages()
    assert message.id == "triggers.E004" and "'sharded'" in message.msg


def test_an_unknown_default_runner_is_an_error(settings):
    settings.TRIGGERS_DEFAULT_RUNNER = "nosuchrunner"
    [message] = triggers_messages()
    assert message.id == "triggers.E003" and "'nosuchrunner'" in message.msg


def test_a_cache_that_culls_early_is_a_warning_in_the_split_layout():
    with with_default_cache(BACKEND="django.core.cache.backends.locmem.LocMemCache", LOCATION="w001"):
        [message] = triggers_messages()
        assert message.id == "triggers.W001" and message.level == checks.WARNING
        assert "MAX_ENTRIES=300" in message.msg and "'default'" in message.msg
        with override_settings(TRIGGERS_CACHE_LAYOUT="single"):
            assert triggers_messages() == []
    with with_default_cache(
        BACKEND="django.core.cache.backends.locmem.LocMemCache",
        LOCATION="w001-large",
        OPTIONS={"MAX_ENTRIES": 1_000_000},
    ):
        assert triggers_messages() == []
