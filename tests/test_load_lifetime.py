"""``dump`` carries the session's lifetime, ``load`` restores it, and
``load --replace`` leaves no key of the replaced session (seen with SCAN on real Redis)."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import prepare_cache
from tests.ops_support import command, refused
from tests.storage_support import CONFIG, populate, tasks_version
from triggers import CacheStorageBackend, TriggerManager


@pytest.fixture
def redis(request):
    return prepare_cache(request, "redis")


def _scan(uid):
    """Every key of Redis that names ``uid``, with its TTL in seconds (-1: none)."""
    import redis as redis_py
    from django.conf import settings

    client = redis_py.Redis.from_url(settings.REDIS_URL)
    found = {}
    for key in client.scan_iter(match=f"*{uid}*", count=1000):
        name = key.decode()
        # Django's key function adds ":<version>:" in front of the cache's keys.
        found[name[3:] if name.startswith(":1:") else name] = client.ttl(key)
    return found


def _dump(tmp_path, uid, alias, name="dump.json"):
    path = tmp_path / name
    command("dump", uid, "--cache", alias, "--output", str(path))
    return path


@pytest.mark.parametrize("timeout", [3600, None])
def test_a_dump_carries_the_lifetime_and_load_restores_it(redis, uid, tmp_path, timeout):
    populate(CacheStorageBackend(uid, cache=redis, timeout=timeout))
    path = _dump(tmp_path, uid, redis)
    assert json.loads(path.read_text())["lifetime"] == timeout
    command("load", str(path), "--uid", uid + "-copy", "--cache", redis)
    copy = CacheStorageBackend(uid + "-copy", cache=redis)
    assert copy.lifetime == timeout
    ttls = _scan(uid + "-copy")
    assert ttls and all(
        (t == -1) if timeout is None else (timeout <= t <= 2 * timeout) for t in ttls.values()
    ), ttls


def test_an_old_dump_without_a_lifetime_loads_with_the_setting(redis, uid, tmp_path, settings):
    populate(CacheStorageBackend(uid, cache=redis, timeout=3600))
    path = _dump(tmp_path, uid, redis)
    document = json.loads(path.read_text())
    del document["lifetime"]
    path.write_text(json.dumps(document))
    settings.TRIGGERS_SESSION_TIMEOUT = 120
    command("load", str(path), "--uid", uid + "-old", "--cache", redis)
    assert CacheStorageBackend(uid + "-old", cache=redis).lifetime == 120


@pytest.mark.parametrize("bad", [0, -5, "7 days", True, 1e400, [1]])
def test_a_dump_with_a_lifetime_that_is_none_is_refused(redis, uid, tmp_path, bad):
    populate(CacheStorageBackend(uid, cache=redis, timeout=3600))
    path = _dump(tmp_path, uid, redis)
    document = json.loads(path.read_text())
    document["lifetime"] = bad
    path.write_text(json.dumps(document).replace("Infinity", "1e400"))
    message = refused("load", str(path), "--uid", uid + "-bad", "--cache", redis)
    assert "lifetime" in message and "positive number of seconds or null" in message
    assert _scan(uid + "-bad") == {}


@pytest.mark.parametrize("layout", ["split", "single"])
@pytest.mark.parametrize("old_timeout", [None, 600])
def test_load_replace_leaves_no_key_of_the_old_session(redis, uid, tmp_path, layout, old_timeout):
    # The session loaded: another configuration (another task table), fewer instances.
    source = "source-" + uuid.uuid4().hex
    manager = TriggerManager(CacheStorageBackend(source, cache=redis, layout=layout, timeout=900))
    manager.update_configuration({"only": {"after": ["never"], "run": "tests.behave"}})
    path = _dump(tmp_path, source, redis)
    # The session replaced: many records, its own task table, and its lock's signal list.
    old = populate(CacheStorageBackend(uid, cache=redis, layout=layout, timeout=old_timeout))
    TriggerManager(old).fire("pageSaved", {"page": 3})
    before = _scan(uid)
    assert len(before) >= (5 if layout == "split" else 3), before

    done = json.loads(
        command(
            "load",
            str(path),
            "--uid",
            uid,
            "--replace",
            "--cache",
            redis,
            "--layout",
            layout,
            "--json",
        )
    )
    assert done["action"] == "replaced"

    after = _scan(uid)
    new = CacheStorageBackend(uid, cache=redis, layout=layout)
    assert set(new.tasks) == {"only"} and len(new.instances) == 0
    # What is left is the new session's, expiring as it does; a 2.x lock signal
    # lives a second at most.
    for key, ttl in after.items():
        if key.startswith("lock-signal:"):
            assert 0 <= ttl <= 1, (key, ttl)
        else:  # the single layout (2.x's value) keeps no lifetime: it lives as the setting says
            assert new.lifetime <= ttl <= 2 * new.lifetime, (key, ttl)
    leftover = {key for key in before if key in after and not key.startswith("lock-signal:")}
    renewed = {new.cache_key, new.witness_key}
    if layout == "split":
        renewed.add(new.tasks_key(tasks_version(redis, new)))
    assert leftover <= renewed, leftover - renewed
    assert not any(":i:" in key for key in after), after


def test_load_json(redis, uid, tmp_path):
    populate(CacheStorageBackend(uid, cache=redis, timeout=3600))
    path = _dump(tmp_path, uid, redis)
    done = json.loads(command("load", str(path), "--uid", uid + "-j", "--cache", redis, "--json"))
    assert done == {
        "action": "loaded",
        "uid": uid + "-j",
        "cache": redis,
        "storage": "cache",
        "tasks": len(CONFIG),
        "instances": len(CacheStorageBackend(uid, cache=redis).instances),
        "lifetime": 3600,
    }
