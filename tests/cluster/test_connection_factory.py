"""The django-redis connection factory for a cluster: its options, and bad input."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from triggers.redis_cluster import ClusterConnectionFactory


def test_options_become_cluster_arguments():
    factory = ClusterConnectionFactory(
        {
            "SOCKET_TIMEOUT": 5,
            "PASSWORD": "pw",
            "REDIS_CLIENT_KWARGS": {"read_from_replicas": False},
        }
    )
    params = factory.make_connection_params("redis://127.0.0.1:7000/0")
    assert params == {
        "url": "redis://127.0.0.1:7000/0",
        "socket_timeout": 5,
        "password": "pw",
        "read_from_replicas": False,
    }


@pytest.mark.parametrize("url", ["redis://127.0.0.1:7000/3", "redis://127.0.0.1:7000/1?x=1"])
def test_a_database_other_than_0_is_refused_by_name(url):
    with pytest.raises(ImproperlyConfigured, match="database 0 only") as raised:
        ClusterConnectionFactory({}).connect(url)
    assert url in str(raised.value)


def test_one_client_per_location(cluster):
    factory = ClusterConnectionFactory({"SOCKET_TIMEOUT": 5})
    first = factory.connect(cluster.url())
    assert factory.connect(cluster.url()) is first
    assert first.ping()
    factory.disconnect(first)
