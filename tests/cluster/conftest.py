"""Fixtures of the cluster suite: a Redis Cluster and a Sentinel setup of the
suite's own, and Django caches on them (see :mod:`tests.cluster.servers`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import override_settings

from tests.cluster.servers import Cluster, SentinelSetup, base_port

#: client timeouts: a node that stopped answering fails a call instead of hanging
TIMEOUTS = {"SOCKET_TIMEOUT": 5, "SOCKET_CONNECT_TIMEOUT": 2}


def cluster_cache(cluster: Cluster) -> dict[str, Any]:
    """django-redis with redis-py's RedisCluster (the package's connection factory)."""
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": cluster.url(),
        "OPTIONS": {
            "CONNECTION_FACTORY": "triggers.redis_cluster.ClusterConnectionFactory",
            **TIMEOUTS,
        },
    }


def sentinel_cache(setup: SentinelSetup) -> dict[str, Any]:
    """django-redis's SentinelClient, with its Sentinel connection factory."""
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": setup.url(),
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.SentinelClient",
            "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
            "SENTINELS": setup.sentinel_addresses(),
            **TIMEOUTS,
        },
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A 3-master cluster for the module (tests that fail nodes over make their own)."""
    made = Cluster(tmp_path_factory.mktemp("cluster"), base_port(0))
    try:
        yield made.start()
    finally:
        made.stop()


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSetup]:
    made = SentinelSetup(tmp_path_factory.mktemp("sentinel"), base_port(100))
    try:
        yield made.start()
    finally:
        made.stop()


@pytest.fixture
def on_caches() -> Iterator[Any]:
    """Add caches to the settings for one test: ``on_caches(cluster=config, ...)``;
    their clients are closed at the end."""
    overrides: list[tuple[override_settings, list[str]]] = []

    def add(**configs: dict[str, Any]) -> None:
        override = override_settings(CACHES={**settings.CACHES, **configs})
        override.enable()
        overrides.append((override, list(configs)))

    yield add
    for override, aliases in reversed(overrides):
        for alias in aliases:
            client = getattr(caches[alias], "client", None)
            disconnect = getattr(client, "disconnect", None)
            if callable(disconnect):
                disconnect()
        override.disable()
