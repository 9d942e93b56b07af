"""The async path on Redis (django-redis and Django's RedisCache) with its connections
dropped through a proxy: a fault raises BackendUnavailable, never hangs the loop
or reads a smaller session, and every acknowledged ``afire`` is in the session
once the server is back."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator

import pytest

from tests.faults.conftest import SERVICE, Proxied, _target, make_cache
from tests.faults.proxy import FaultProxy
from tests.faults.test_connection_faults import CONFIG, HUNG, recover, store, stored_count
from triggers import TriggerManager
from triggers.errors import BackendUnavailable


@pytest.fixture(params=["redis", "dredis"])
def proxied_redis(request: pytest.FixtureRequest) -> Iterator[Proxied]:
    from tests.conftest import require_service

    kind = request.param
    require_service(SERVICE[kind])
    host, port = _target(SERVICE[kind])
    with FaultProxy((host, port)) as proxy:
        cache = make_cache(kind, proxy.address)
        yield Proxied(kind, cache, proxy, make_cache(kind, f"{host}:{port}"))
        proxy.resume()
        cache.close()


def test_an_afire_during_a_drop_raises_and_the_loop_runs_on(
    proxied_redis: Proxied, uid: str
) -> None:
    manager = TriggerManager(store(proxied_redis, uid))
    manager.update_configuration(CONFIG)
    assert manager.storage.commits_on_loop()

    async def main() -> tuple[BaseException | None, int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                await asyncio.sleep(0.01)
                ticks += 1

        counting = asyncio.create_task(ticker())
        await manager.afire("tick", {"i": 0})
        proxied_redis.proxy.drop()
        try:
            await asyncio.wait_for(manager.afire("tick", {"i": 1}), HUNG)
        except BaseException as exc:  # noqa: BLE001 - checked below
            error: BaseException | None = exc
        else:
            error = None
        stop.set()
        await counting
        return error, ticks

    error, ticks = asyncio.run(main())
    assert isinstance(error, BackendUnavailable), repr(error)
    assert error.__cause__ is not None
    assert ticks > 0  # the loop ran while the fire met the dead connection
    count, _ = recover(proxied_redis, uid)
    assert count in (1, 2) and (count == 1 or error.outcome_unknown)
    asyncio.run(TriggerManager(store(proxied_redis, uid)).afire("tick"))
    assert stored_count(proxied_redis, uid) == count + 1


def test_afires_through_repeated_drops_lose_nothing_acknowledged(
    proxied_redis: Proxied, uid: str
) -> None:
    manager = TriggerManager(store(proxied_redis, uid))
    manager.update_configuration(CONFIG)
    stop = threading.Event()

    def flap() -> None:
        rng = random.Random(11)
        while not stop.is_set():
            time.sleep(rng.uniform(0.05, 0.2))
            proxied_redis.proxy.drop()
            time.sleep(rng.uniform(0.02, 0.1))
            proxied_redis.proxy.resume()

    async def main() -> tuple[int, int]:
        acknowledged = unknown = 0
        current = manager
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(current.afire("tick"), HUNG)
            except BackendUnavailable as error:
                unknown += error.outcome_unknown
                current = TriggerManager(
                    store(proxied_redis, uid)
                )  # start over from what is stored
            else:
                acknowledged += 1
        return acknowledged, unknown

    flapper = threading.Thread(target=flap, daemon=True)
    flapper.start()
    try:
        acknowledged, unknown = asyncio.run(main())
    finally:
        stop.set()
        flapper.join(5)
    count, _ = recover(proxied_redis, uid)
    assert acknowledged > 0
    assert acknowledged <= count <= acknowledged + unknown
