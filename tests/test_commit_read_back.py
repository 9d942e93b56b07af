"""A refused commit brings back what its retry needs, counted in requests (not timed).

When a process's commit finds the session moved on (another process
committed), the commit script answers with the head and witness as stored
and the records its block read, so the retry commits without reading. A
task run in a process that knows nothing of the session reads the head, the
witness and its own record in one request. Every commit is still checked
against the stored witness: a deleted session is not written back, and a
damaged value in the answer is named (StorageCorrupted).
"""

from __future__ import annotations

import pytest

from tests.runner_support import RecordingRunner, behave
from tests.test_task_run_requests import counted_requests
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import InstanceMissing, StorageCorrupted
from triggers.locking import lock_driver
from triggers.storages.cache.committed import committed_heads
from triggers.tasks.execution import run_task

GARBAGE = b"\x80\x05garbage, not a pickle\xff"


@pytest.fixture(params=["redis", "dredis"])
def redis_cache(request):
    from .conftest import prepare_cache

    return prepare_cache(request, request.param)


def _session(uid, alias, settings, test_runners):
    """Two tasks readied by one fire (their runs recorded, not made): the manager and payloads."""
    settings.TRIGGERS_CACHE_ALIAS = alias
    manager = TriggerManager(CacheStorageBackend(uid, cache=alias))
    manager.update_configuration(
        {
            name: {"after": ["start"], "run": "tests.behave", "using": RecordingRunner.name,
                   "withParams": behave(**{"return": {"from": name}})}
            for name in ("t_a", "t_b")
        }
    )
    manager.fire("start", {"n": 1})
    return manager, RecordingRunner.payloads(uid)


def _identity(storage):
    """What names the session in this process's memory of committed states."""
    return lock_driver(storage.cache).session_identity(storage.keys.head)


def _moved_on_elsewhere(manager, payload):
    """Run ``payload`` as another process would (its commits unknown here), and
    put back what this process knew before: this process is now stale."""
    identity = _identity(manager.storage)
    stale = committed_heads.get(identity)
    assert stale is not None
    committed_heads.clear()
    run_task(payload)
    committed_heads.clear()
    witness = stale.values[manager.storage.keys.witness]
    committed_heads.put(identity, stale, witness=witness, started_from=None)
    return stale


def _raw(alias):
    from django.core.cache import caches

    from triggers.cache_internals import redis_codec

    codec = redis_codec(caches[alias])
    return codec.client(), codec.make_key


def _statuses(uid, alias):
    return {i.name: i.status for i in CacheStorageBackend(uid, cache=alias).iter_instances()}


def test_a_stale_process_retries_from_the_refusal_without_reading(
    redis_cache, uid, settings, test_runners
):
    manager, payloads = _session(uid, redis_cache, settings, test_runners)
    _moved_on_elsewhere(manager, payloads["t_a#0"])
    with counted_requests() as sent:
        assert run_task(payloads["t_b#0"]) == {"from": "t_b"}
    # Refused (bringing back the head, the witness and t_b's record), committed
    # at the retry, then finished: no read between them.
    assert sent == ["EVALSHA"] * 3
    assert _statuses(uid, redis_cache) == {"t_a#0": "finished", "t_b#0": "finished"}


def test_a_process_that_knows_nothing_reads_the_head_and_its_record_at_once(
    redis_cache, uid, settings, test_runners
):
    manager, payloads = _session(uid, redis_cache, settings, test_runners)
    _moved_on_elsewhere(manager, payloads["t_a#0"])  # t_b's record now under its own key
    committed_heads.clear()
    with counted_requests() as sent:
        assert run_task(payloads["t_b#0"]) == {"from": "t_b"}
    assert sent == ["MGET", "EVALSHA", "EVALSHA"]
    assert _statuses(uid, redis_cache)["t_b#0"] == "finished"


def test_an_unknown_session_is_not_written_by_a_run(redis_cache, uid, settings, test_runners):
    manager, payloads = _session(uid, redis_cache, settings, test_runners)
    payload = dict(payloads["t_b#0"], storage_uid=uid + "-never-stored")
    committed_heads.clear()
    with counted_requests() as sent, pytest.raises(InstanceMissing):
        run_task(payload)
    # One read finds nothing stored; then the lock's definite answer (taken, let go).
    assert sent == ["MGET", "EVALSHA", "EVALSHA"]
    client, make_key = _raw(redis_cache)
    assert not client.exists(make_key(CacheStorageBackend(payload["storage_uid"], cache=redis_cache).keys.head))


def test_a_session_deleted_since_is_not_written_back(redis_cache, uid, settings, test_runners):
    manager, payloads = _session(uid, redis_cache, settings, test_runners)
    identity = _identity(manager.storage)
    stale = committed_heads.get(identity)
    CacheStorageBackend(uid, cache=redis_cache).delete()
    committed_heads.put(identity, stale, witness=stale.values[manager.storage.keys.witness], started_from=None)
    with counted_requests() as sent, pytest.raises(InstanceMissing):
        run_task(payloads["t_b#0"])
    # Refused (nothing comes back): the lock's definite answer, no read in between.
    assert sent == ["EVALSHA", "EVALSHA", "EVALSHA"]
    client, make_key = _raw(redis_cache)
    keys = manager.storage.keys
    assert not client.exists(make_key(keys.head), make_key(keys.witness), make_key(keys.record("t_b#0")))


@pytest.mark.parametrize("damaged", ["head", "record"])
def test_a_damaged_value_in_the_refusal_is_named(redis_cache, uid, settings, test_runners, damaged):
    manager, payloads = _session(uid, redis_cache, settings, test_runners)
    _moved_on_elsewhere(manager, payloads["t_a#0"])
    keys = manager.storage.keys
    key = keys.head if damaged == "head" else keys.record("t_b#0")
    client, make_key = _raw(redis_cache)
    client.set(make_key(key), GARBAGE)
    with counted_requests() as sent, pytest.raises(StorageCorrupted) as caught:
        run_task(payloads["t_b#0"])
    assert repr(key) in str(caught.value)
    assert sent == ["EVALSHA"]  # named from the refusal's answer, nothing read again
