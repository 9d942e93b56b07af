"""The start-up checks of a cluster: the single layout refused, the wait setting checked."""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import override_settings

from tests.cluster.conftest import cluster_cache
from triggers.checks_cluster import cluster_class_of

VALKEY_CLUSTER = {
    "BACKEND": "django_valkey.cluster_cache.cache.ClusterValkeyCache",
    "LOCATION": "valkey://h:7000",
}
PLAIN = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://h:6379/0"}


def ids(messages):
    return [message.id for message in messages]


def run_checks():
    return [
        m
        for m in checks.run_checks(tags=["triggers"])
        if m.id in ("triggers.E021", "triggers.E022")
    ]


class FakeCluster:
    def url(self):
        return "redis://127.0.0.1:7000/0"


@pytest.mark.parametrize("config", [cluster_cache(FakeCluster()), VALKEY_CLUSTER])
def test_the_single_layout_on_a_cluster_is_refused(config):
    with override_settings(CACHES={"default": config}, TRIGGERS_CACHE_LAYOUT="single"):
        [error] = run_checks()
    assert error.id == "triggers.E021"
    assert "hash slot" in error.msg and cluster_class_of(config) in error.msg


@pytest.mark.parametrize("config", [cluster_cache(FakeCluster()), VALKEY_CLUSTER])
def test_the_split_layout_on_a_cluster_passes(config):
    with override_settings(CACHES={"default": config}, TRIGGERS_CACHE_LAYOUT="split"):
        assert run_checks() == []


def test_the_single_layout_elsewhere_passes():
    with override_settings(CACHES={"default": PLAIN}, TRIGGERS_CACHE_LAYOUT="single"):
        assert run_checks() == []


@pytest.mark.parametrize("value", [-1, "1", 1.5, True, None])
def test_a_bad_wait_setting_is_named(value):
    with override_settings(TRIGGERS_REDIS_WAIT_REPLICAS=value):
        [error] = run_checks()
    assert error.id == "triggers.E022" and repr(value) in error.msg


@pytest.mark.parametrize("value", [0, 1, 2])
def test_a_good_wait_setting_passes(value):
    with override_settings(TRIGGERS_REDIS_WAIT_REPLICAS=value):
        assert run_checks() == []


def test_the_checks_page_quotes_the_real_messages():
    from tests.test_docs_settings_checks import message, quoted

    with override_settings(
        CACHES={"default": cluster_cache(FakeCluster())}, TRIGGERS_CACHE_LAYOUT="single"
    ):
        assert quoted("triggers.E021").startswith(message("triggers.E021"))
    with override_settings(TRIGGERS_REDIS_WAIT_REPLICAS=-1):
        assert quoted("triggers.E022").startswith(message("triggers.E022"))
