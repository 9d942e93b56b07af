"""Fixtures of the fault suite: real servers behind a proxy that fails on
command, Memcached servers of their own (small items, little memory), and
cache objects pointed at them."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.core.cache import BaseCache

from tests.conftest import require_service
from tests.faults.proxy import FaultProxy

#: every client's socket timeout in these tests: a stalled server fails a call after this
CLIENT_TIMEOUT = 1.0
#: the caches' default timeout, and so the ttl of a session's lock: a lock
#: whose release a fault cut off expires soon (sessions get a timeout of their own)
LOCK_TTL = 3

SERVICE = {"memcached": "memcached", "redis": "redis", "dredis": "redis"}


def _target(service: str) -> tuple[str, int]:
    if service == "redis":
        url = urlparse(settings.REDIS_URL)
        return url.hostname or "127.0.0.1", url.port or 6379
    host, _, port = settings.MEMCACHED.partition(":")
    return host, int(port or 11211)


def memcached_target() -> tuple[str, int]:
    """The suite's Memcached server."""
    require_service("memcached")
    return _target("memcached")


def make_cache(kind: str, address: str, **options: Any) -> BaseCache:
    """A Django cache object of ``kind`` for the server at ``address``, with client timeouts."""
    if kind == "memcached":
        from django.core.cache.backends.memcached import PyMemcacheCache

        opts = {"connect_timeout": CLIENT_TIMEOUT, "timeout": CLIENT_TIMEOUT, **options}
        return PyMemcacheCache(address, {"OPTIONS": opts, "TIMEOUT": LOCK_TTL})
    db = urlparse(settings.REDIS_URL).path or "/15"
    if kind == "redis":  # django-redis
        from django_redis.cache import RedisCache as DjangoRedisCache

        opts = {"SOCKET_TIMEOUT": CLIENT_TIMEOUT, "SOCKET_CONNECT_TIMEOUT": CLIENT_TIMEOUT, **options}
        return DjangoRedisCache(f"redis://{address}{db}", {"OPTIONS": opts, "TIMEOUT": LOCK_TTL})
    from django.core.cache.backends.redis import RedisCache

    opts = {"socket_timeout": CLIENT_TIMEOUT, "socket_connect_timeout": CLIENT_TIMEOUT, **options}
    return RedisCache(f"redis://{address}{db}", {"OPTIONS": opts, "TIMEOUT": LOCK_TTL})


@dataclass
class Proxied:
    """A cache object whose every connection goes through ``proxy``."""

    kind: str
    cache: BaseCache
    proxy: FaultProxy
    #: a cache object of the same kind that talks to the server directly
    direct: BaseCache


@pytest.fixture(params=["memcached", "redis", "dredis"])
def proxied(request: pytest.FixtureRequest) -> Iterator[Proxied]:
    """Memcached (PyMemcacheCache), django-redis and Django's RedisCache, each behind a proxy."""
    kind = request.param
    require_service(SERVICE[kind])
    host, port = _target(SERVICE[kind])
    with FaultProxy((host, port)) as proxy:
        cache = make_cache(kind, proxy.address)
        yield Proxied(kind, cache, proxy, make_cache(kind, f"{host}:{port}"))
        proxy.resume()
        cache.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def memcached_server(*args: str) -> Iterator[str]:
    """A memcached of this test's own on a free port (extra ``args``: ``-I 64k``...);
    its address. Stopped (by its pid) when done."""
    binary = shutil.which("memcached")
    if binary is None:
        pytest.skip("memcached is not installed")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "-u", "root", "-l", "127.0.0.1", "-p", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"memcached {' '.join(args)} did not start on port {port}")
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(10)


#: memcached's arguments for entries of at most 64 KiB in 8 MB (its slab chunks
#: must not be larger than its items)
SMALL_ITEMS = ("-I", "64k", "-m", "8", "-o", "slab_chunk_max=16384")


@pytest.fixture
def small_items() -> Iterator[BaseCache]:
    """A PyMemcacheCache on a memcached of its own whose entries hold at most 64 KiB."""
    with memcached_server(*SMALL_ITEMS) as address:
        cache = make_cache("memcached", address)
        yield cache
        cache.close()
