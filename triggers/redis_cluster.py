"""django-redis on a Redis Cluster: a connection factory that makes redis-py's ``RedisCluster``.

django-redis has clients for one server, for shards it picks itself, and
for Sentinel, but none for a Redis Cluster. Name this factory in the
cache's options and its client talks to the cluster instead::

    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://10.0.0.1:7000/0",  # any node: it finds the others
            "OPTIONS": {"CONNECTION_FACTORY": "triggers.redis_cluster.ClusterConnectionFactory"},
        }
    }

One client per process is made for each LOCATION, as django-redis makes
one connection pool. A cluster has database 0 only.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

__all__ = ["ClusterConnectionFactory"]

#: the options of django-redis's own that become RedisCluster arguments
_OPTIONS = {
    "SOCKET_TIMEOUT": "socket_timeout",
    "SOCKET_CONNECT_TIMEOUT": "socket_connect_timeout",
    "PASSWORD": "password",
    "USERNAME": "username",
}


class ClusterConnectionFactory:
    """A django-redis ``CONNECTION_FACTORY`` making ``redis.cluster.RedisCluster`` clients.

    ``REDIS_CLIENT_KWARGS`` in the options go to ``RedisCluster`` as they are
    (``read_from_replicas``, ``cluster_error_retry_attempts``...).
    """

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.lock = threading.Lock()
        #: the client of each URL, made once (the pool django-redis keeps per URL)
        self.clients: dict[str, Any] = {}

    def make_connection_params(self, url: str) -> dict[str, Any]:
        """RedisCluster's arguments for ``url`` and the cache's options."""
        params: dict[str, Any] = {"url": url}
        for option, argument in _OPTIONS.items():
            if self.options.get(option):
                params[argument] = self.options[option]
        params.update(self.options.get("REDIS_CLIENT_KWARGS", {}))
        return params

    def connect(self, url: str) -> Any:
        """The cluster client for ``url`` (made on first use)."""
        with self.lock:
            if url not in self.clients:
                self.clients[url] = self.get_connection(self.make_connection_params(url))
            return self.clients[url]

    def get_connection(self, params: dict[str, Any]) -> Any:
        from redis.cluster import RedisCluster

        params = dict(params)
        url = params.pop("url")
        if urlparse(url).path.strip("/") not in ("", "0"):
            raise ImproperlyConfigured(
                f"a Redis Cluster has database 0 only; LOCATION {url!r} names another"
            )
        return RedisCluster.from_url(url, **params)

    def disconnect(self, connection: Any) -> None:
        connection.close()
