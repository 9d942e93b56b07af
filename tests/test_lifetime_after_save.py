"""A session lives at least its timeout after its LAST save, on every cache and layout.

Real expiry, on the real caches, with a timeout of a few seconds: a session
saved once, then saved again a moment later without any refresh being due,
must still be whole (every part readable) just short of a timeout after
that second save. No assertion here is about speed: only that what must
still exist does.
"""

from __future__ import annotations

import json
import time

import pytest
from django.core.cache import caches

from tests.conftest import PAGED_CACHES, prepare_cache
from tests.ops_support import command
from tests.storage_support import fresh, keys_of, populate, tasks_version
from triggers import CacheStorageBackend

LIFETIME = 8  # seconds
#: when the second save comes, after the first: before any refresh is due
SECOND_SAVE = 3
#: how long before the promised end the session is read: Memcached counts
#: expiry in whole seconds of a clock it ticks once a second, so an entry
#: may go up to a second early; a session that only the first save kept
#: would be gone by then (SECOND_SAVE + LIFETIME - MARGIN > LIFETIME)
MARGIN = 2
CACHES = ["locmem", "redis", "dredis", "memcached", "db_sqlite"]


def _usable(request, aliases):
    found, absent = [], []
    for alias in aliases:
        try:
            found.append(prepare_cache(request, alias))
        except pytest.skip.Exception as skipped:
            absent.append(str(skipped))
    return found, absent


@pytest.mark.db_cache
def test_a_session_lives_its_timeout_after_its_last_save(request, uid):
    aliases, absent = _usable(request, CACHES)
    stores, expected, saved = {}, {}, {}
    for alias in aliases:
        for layout in ("split", "single", "paged") if alias in PAGED_CACHES else ("split", "single"):
            store = CacheStorageBackend(
                f"{uid}-{alias}-{layout}", cache=alias, layout=layout, timeout=LIFETIME
            )
            stores[alias, layout] = populate(store)
    time.sleep(SECOND_SAVE)
    for place, store in stores.items():
        with store.acquire_lock(ttl=30):
            store.metadata["second"] = True
            store.save()
        saved[place] = time.time()
        expected[place] = fresh(store).debug_repr()
    # Just short of a timeout after the second save; every wait in this test is shorter.
    time.sleep(max(0.0, min(saved.values()) + LIFETIME - MARGIN - time.time()))
    late = []
    for place, store in stores.items():
        found = fresh(store).debug_repr()
        if time.time() - saved[place] >= LIFETIME:
            late.append(place)  # the machine stalled past the promise: nothing to check
            continue
        assert found == expected[place], place
    assert len(late) < len(stores), f"every read came a timeout after its save: {late}"
    if absent:
        pytest.skip("; ".join(absent))


def test_on_redis_no_part_expires_before_the_head(request, uid):
    """Records, witness and task table live at least as long as the head, and
    the head at least the timeout, after a save that was no refresh."""
    alias = prepare_cache(request, "redis")
    store = populate(CacheStorageBackend(uid, cache=alias, layout="split", timeout=100))
    time.sleep(1.1)  # the next save is a second later: not a refresh
    with store.acquire_lock():
        store.metadata["again"] = True
        store.save()
    client = caches[alias]
    keys = [*keys_of(store), store.tasks_key(tasks_version(alias, store))]
    ttls = {key: client.ttl(key) for key in keys if client.has_key(key)}
    head = ttls.pop(store.cache_key)
    assert len(ttls) >= 3, ttls
    assert head >= 100 - 1, head  # whole seconds, as the cache reads them
    assert min(ttls.values()) >= head, (head, ttls)


def test_show_prints_when_the_session_expires(request, uid):
    aliases, absent = _usable(request, ["locmem", "redis", "memcached"])
    for alias in aliases:
        populate(CacheStorageBackend(f"{uid}-{alias}", cache=alias, timeout=600))
        before = time.time()
        report = json.loads(command("show", f"{uid}-{alias}", "--cache", alias, "--json"))
        assert report["lifetime"] == 600
        assert 600 - 5 <= report["expiresIn"] <= 1200, report
        expires_at = report["expiresAt"]
        assert expires_at.endswith("+00:00")
        headline = command("show", f"{uid}-{alias}", "--cache", alias).splitlines()[0]
        assert "lives at least 10 min after a save; expires " in headline, headline
        assert expires_at[:16].replace("T", " ") in headline or expires_at[:10] in headline
        assert " UTC (in " in headline and headline.endswith(" s)"), headline
        assert before < time.time()
    if absent:
        pytest.skip("; ".join(absent))


def test_show_of_a_session_that_never_expires(request, uid):
    alias = prepare_cache(request, "redis")
    populate(CacheStorageBackend(uid, cache=alias, timeout=None))
    report = json.loads(command("show", uid, "--cache", alias, "--json"))
    assert (
        report["expiresIn"] is None and report["expiresAt"] is None and report["lifetime"] is None
    )
    assert command("show", uid, "--cache", alias).splitlines()[0].endswith("; never expires")
