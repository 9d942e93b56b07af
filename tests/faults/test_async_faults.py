"""The async path with its connections dropped through a proxy (on Redis,
django-redis and Django's RedisCache, from the loop; on Memcached, in a worker
thread): a fault raises BackendUnavailable, never hangs the loop or reads a
smaller session, and every acknowledged ``afire`` is in the session once the
server is back."""

from __future__ import annotations

import asyncio
import random
import threading
import time

from tests.faults.conftest import Proxied
from tests.faults.test_connection_faults import CONFIG, HUNG, recover, store, stored_count
from triggers import TriggerManager
from triggers.errors import BackendUnavailable


def test_an_afire_during_a_drop_raises_and_the_loop_runs_on(proxied: Proxied, uid: str) -> None:
    manager = TriggerManager(store(proxied, uid))
    manager.update_configuration(CONFIG)
    # Memcached: the sync operation, in a worker thread.
    assert manager.storage.commits_on_loop() is (proxied.kind != "memcached")

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
        proxied.proxy.drop()
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
    count, _ = recover(proxied, uid)
    assert count in (1, 2) and (count == 1 or error.outcome_unknown)
    asyncio.run(TriggerManager(store(proxied, uid)).afire("tick"))
    assert stored_count(proxied, uid) == count + 1


def test_afires_through_repeated_drops_lose_nothing_acknowledged(
    proxied: Proxied, uid: str
) -> None:
    manager = TriggerManager(store(proxied, uid))
    manager.update_configuration(CONFIG)
    stop = threading.Event()

    def flap() -> None:
        rng = random.Random(11)
        while not stop.is_set():
            time.sleep(rng.uniform(0.05, 0.2))
            proxied.proxy.drop()
            time.sleep(rng.uniform(0.02, 0.1))
            proxied.proxy.resume()

    async def main() -> tuple[int, int]:
        acknowledged = unknown = 0
        current = manager
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(current.afire("tick"), HUNG)
            except BackendUnavailable as error:
                unknown += error.outcome_unknown
                current = TriggerManager(store(proxied, uid))  # start over from what is stored
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
    count, _ = recover(proxied, uid)
    assert acknowledged > 0
    assert acknowledged <= count <= acknowledged + unknown
