"""The state a dispatch hands the worker that runs the instance (counted in requests, not timed).

A worker process that never saw the session starts the run from the state
the firing process committed and handed it (a signed token): no read
before its first commit. A token that is stale costs one refused commit and
overwrites nothing; one that does not verify, or names another session or
instance, is ignored.
"""

from __future__ import annotations

import random
import types

import pytest

from tests.runner_support import RecordingRunner
from tests.test_task_run_requests import _configure, _statuses, counted_requests
from triggers import CacheStorageBackend, TriggerManager
from triggers.storages.cache import handoff as handoff_module
from triggers.storages.cache.committed import committed_heads
from triggers.tasks.execution import run_task


@pytest.fixture(params=["redis", "dredis"])
def redis_cache(request):
    from .conftest import prepare_cache

    return prepare_cache(request, request.param)


def _fired(uid, alias, tasks=None):
    """A session whose "start" readied ``t_a#0`` (on a runner that only records it),
    the manager that fired, and the payload and token of the run."""
    manager = TriggerManager(CacheStorageBackend(uid, cache=alias))
    _configure(manager, RecordingRunner.name, tasks or {"t_a": "start"})
    manager.fire("start", {"n": 1})
    token = manager.storage.handoff("t_a#0")
    return manager, RecordingRunner.payloads(uid)["t_a#0"], token


def test_a_run_started_from_the_handed_state_reads_nothing(
    redis_cache, uid, settings, test_runners
):
    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    _, payload, token = _fired(uid, redis_cache)
    assert isinstance(token, str)
    committed_heads.clear()  # as a worker process that never saw the session
    with counted_requests() as sent:
        assert run_task(payload, handoff=token) == {"from": "t_a"}
    assert len(sent) == 2, sent  # running, then finished: no read first
    assert [name.upper() for name in sent] == ["EVALSHA", "EVALSHA"]
    assert _statuses(uid, redis_cache) == {"t_a#0": "finished"}


def test_a_stale_handed_state_costs_one_refused_commit_and_keeps_what_came_after(
    redis_cache, uid, settings, test_runners
):
    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    manager, payload, token = _fired(uid, redis_cache, {"t_a": "start", "t_b": "later"})
    manager.fire("later", {"n": 2})  # commits after the token was made
    with manager.storage.acquire_lock():
        manager.storage.metadata["note"] = "kept"
        manager.storage.save()
    committed_heads.clear()
    with counted_requests() as sent:
        assert run_task(payload, handoff=token) == {"from": "t_a"}
    # Refused (which brings the state back), then the two commits: no read.
    assert [name.upper() for name in sent] == ["EVALSHA"] * 3
    assert _statuses(uid, redis_cache) == {"t_a#0": "finished", "t_b#0": "scheduled"}
    assert CacheStorageBackend(uid, cache=redis_cache).metadata["note"] == "kept"


def _tampered(token: str) -> str:
    value, _, signature = token.rpartition(":")
    flipped = "A" if signature[0] != "A" else "B"
    return f"{value}:{flipped}{signature[1:]}"


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(_tampered, id="tampered signature"),
        pytest.param(lambda token: token[: len(token) // 2], id="cut short"),
        pytest.param(lambda token: 42, id="not a string"),
        pytest.param(lambda token: {"head": token}, id="a dict"),
        pytest.param(lambda token: "\x1b[2J:{}", id="escape sequence"),
    ],
)
def test_a_token_that_does_not_verify_is_ignored(redis_cache, uid, settings, test_runners, spoil):
    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    _, payload, token = _fired(uid, redis_cache)
    committed_heads.clear()
    from django.core.cache import caches

    storage = CacheStorageBackend(uid, cache=redis_cache)
    stored = [storage.cache_key, storage.witness_key, storage.record_key("t_a#0")]
    before = caches[redis_cache].get_many(stored)
    assert storage.take_handoff(spoil(token), "t_a#0") is False
    assert caches[redis_cache].get_many(stored) == before  # the session as it was
    with counted_requests() as sent:
        assert run_task(payload, handoff=spoil(token)) == {"from": "t_a"}
    assert [name.upper() for name in sent] == ["MGET", "EVALSHA", "EVALSHA"]  # as without one
    assert _statuses(uid, redis_cache) == {"t_a#0": "finished"}


def test_a_token_signed_with_another_key_is_ignored(redis_cache, uid, settings, test_runners):
    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    _, _, token = _fired(uid, redis_cache)
    settings.SECRET_KEY = "another project's key"
    assert CacheStorageBackend(uid, cache=redis_cache).take_handoff(token, "t_a#0") is False


def test_a_token_is_for_one_session_and_one_instance(redis_cache, uid, settings, test_runners):
    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    _, _, token = _fired(uid, redis_cache)
    other = CacheStorageBackend(uid + "-other", cache=redis_cache)
    assert other.take_handoff(token, "t_a#0") is False
    assert CacheStorageBackend(uid, cache=redis_cache).take_handoff(token, "t_b#0") is False
    assert CacheStorageBackend(uid, cache=redis_cache).take_handoff(token, "t_a#0") is True


def test_a_token_made_for_another_session_is_never_written_there(
    redis_cache, uid, settings, test_runners
):
    """Handed to a session of another uid (a message routed wrongly), it is refused
    before anything is read, and the other session is not touched."""
    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    _, _, token = _fired(uid, redis_cache)
    other_uid = uid + "-b"
    _, other_payload, _ = _fired(other_uid, redis_cache)
    committed_heads.clear()
    assert run_task(other_payload, handoff=token) == {"from": "t_a"}
    assert _statuses(other_uid, redis_cache) == {"t_a#0": "finished"}
    assert _statuses(uid, redis_cache) == {"t_a#0": "scheduled"}


def test_nothing_is_handed_without_a_secret_key(redis_cache, uid, settings, test_runners):
    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    settings.SECRET_KEY = ""
    _, _, token = _fired(uid, redis_cache)
    assert token is None


def test_nothing_is_handed_for_a_large_session(redis_cache, uid, settings, test_runners):
    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    manager = TriggerManager(CacheStorageBackend(uid, cache=redis_cache))
    _configure(manager, RecordingRunner.name, {"t_a": "start"})
    with manager.storage.acquire_lock():
        # Random bytes, which the head's compression cannot shrink below the limit.
        manager.storage.metadata["bulk"] = random.Random(7).randbytes(handoff_module.MAX_HANDOFF_BYTES + 1)
        manager.storage.save()
    manager.fire("start", {"n": 1})
    assert manager.storage.handoff("t_a#0") is None


def test_nothing_is_handed_of_an_instance_the_state_does_not_hold(
    redis_cache, uid, settings, test_runners
):
    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    manager, _, _ = _fired(uid, redis_cache)
    assert manager.storage.handoff("t_zz#0") is None
    assert CacheStorageBackend(uid, cache=redis_cache).handoff("t_a#0") is None  # committed nothing


def test_a_session_deleted_and_begun_again_refuses_an_old_token(
    redis_cache, uid, settings, test_runners
):
    """The token's witness names one save: a new session under the uid is another
    state, so the run commits only after reading it (and runs its own instance)."""
    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    manager, _, token = _fired(uid, redis_cache)
    manager.storage.delete()
    _, payload, _ = _fired(uid, redis_cache)
    committed_heads.clear()
    with counted_requests() as sent:
        assert run_task(payload, handoff=token) == {"from": "t_a"}
    assert len(sent) == 3
    assert _statuses(uid, redis_cache) == {"t_a#0": "finished"}


def test_a_run_given_the_token_its_storage_hands_ends_as_without_one(
    any_cache, uid, settings, test_runners
):
    """Where the cache commits only under the lock, a storage hands nothing or a
    token that changes nothing: the run reads and ends as it always did."""
    settings.TRIGGERS_CACHE_ALIAS = any_cache
    manager, payload, token = _fired(uid, any_cache, {"t_a": "start", "t_b": "t_a"})
    committed_heads.clear()
    assert run_task(payload, handoff=token) == {"from": "t_a"}
    assert _statuses(uid, any_cache) == {"t_a#0": "finished", "t_b#0": "scheduled"}


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(
            {"uid": "u", "name": "t_a#0", "witness": "7", "head": "", "record": ""},
            id="witness text",
        ),
        pytest.param(
            {"uid": "u", "name": "t_a#0", "witness": -1, "head": "", "record": ""},
            id="witness negative",
        ),
        pytest.param(
            {"uid": "u", "name": "t_a#0", "witness": 7, "head": "%%", "record": ""},
            id="head not base64",
        ),
        pytest.param({"uid": "u", "name": "t_a#0", "witness": 7, "record": ""}, id="no head"),
        pytest.param(
            {"uid": "u", "name": "t_a#0", "witness": True, "head": "", "record": ""},
            id="witness bool",
        ),
        pytest.param(["u", "t_a#0"], id="a list"),
    ],
)
def test_a_signed_token_of_the_wrong_shape_is_ignored(settings, content):
    """Signed with the project's key but not made by handoff(): nothing is taken from it."""
    from django.core import signing

    token = signing.Signer(salt="triggers.storages.cache.handoff").sign_object(content)
    assert handoff_module.read_handoff(token, "u", "t_a#0") is None


def test_a_token_signed_for_another_use_is_ignored(settings):
    from django.core import signing

    content = {"uid": "u", "name": "t_a#0", "witness": 7, "head": "", "record": ""}
    assert handoff_module.read_handoff(signing.dumps(content), "u", "t_a#0") is None
    token = signing.Signer(salt="triggers.storages.cache.handoff").sign_object(content)
    assert handoff_module.read_handoff(token, "u", "t_a#0") == (7, b"", b"")


def test_a_record_handed_with_an_older_state_is_used_while_it_is_still_stored(
    redis_cache, uid, settings, test_runners
):
    """The worker's process committed a newer state than the one handed (a sibling
    run), which lacks the run's record: the handed record is taken, and the commit
    checks it is still the one stored, so no read comes first."""
    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    manager, payloads, tokens = _fired_two(uid, redis_cache)
    committed_heads.clear()
    assert run_task(payloads["t_a#0"], handoff=tokens["t_a#0"]) == {"from": "t_a"}
    with counted_requests() as sent:
        assert run_task(payloads["t_b#0"], handoff=tokens["t_b#0"]) == {"from": "t_b"}
    assert [name.upper() for name in sent] == ["EVALSHA", "EVALSHA"]
    assert _statuses(uid, redis_cache) == {"t_a#0": "finished", "t_b#0": "finished"}


def test_a_handed_record_changed_since_is_refused_and_the_change_kept(
    redis_cache, uid, settings, test_runners
):
    """The record was changed after the state was handed (and settled under its
    key), and this process then committed a newer state that lacks it: the
    handed record is taken, the commit finds the stored one differs and is
    refused, and the retry keeps the change."""
    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    manager, payloads, tokens = _fired_two(uid, redis_cache)
    other = TriggerManager(CacheStorageBackend(uid, cache=redis_cache))
    other.update_instance_metadata("t_b#0", {"note": "kept"})
    committed_heads.clear()
    assert run_task(payloads["t_a#0"], handoff=tokens["t_a#0"]) == {"from": "t_a"}
    with counted_requests() as sent:
        assert run_task(payloads["t_b#0"], handoff=tokens["t_b#0"]) == {"from": "t_b"}
    # Refused on the record (which brings the state back), then the two commits.
    assert [name.upper() for name in sent] == ["EVALSHA"] * 3
    stored = CacheStorageBackend(uid, cache=redis_cache)
    assert stored.instances["t_b#0"].status == "finished"
    assert stored.instances["t_b#0"].metadata["note"] == "kept"


def _fired_two(uid, alias):
    manager = TriggerManager(CacheStorageBackend(uid, cache=alias))
    _configure(manager, RecordingRunner.name, {"t_a": "start", "t_b": "start"})
    manager.fire("start", {"n": 1})
    names = ("t_a#0", "t_b#0")
    tokens = {name: manager.storage.handoff(name) for name in names}
    payloads = {name: RecordingRunner.payloads(uid)[name] for name in names}
    return manager, payloads, tokens


def test_the_celery_runner_hands_nothing_when_the_setting_is_off(
    redis_cache, uid, settings, test_runners
):
    from triggers.tasks import celery_runner

    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    manager, _, _ = _fired(uid, redis_cache)
    # Only its name is asked for; reading it here would make the storage forget what it committed.
    instance = types.SimpleNamespace(name="t_a#0")
    assert isinstance(celery_runner._handoff(manager, instance), str)
    settings.TRIGGERS_CELERY_HANDOFF = False
    assert celery_runner._handoff(manager, instance) is None


def test_a_token_signed_with_a_fallback_key_verifies(redis_cache, uid, settings, test_runners):
    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    _, _, token = _fired(uid, redis_cache)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "the new key"
    assert CacheStorageBackend(uid, cache=redis_cache).take_handoff(token, "t_a#0") is True


@pytest.mark.parametrize("task", ["t:{a}", "t}{b", "t_é\\x1b"])
def test_a_task_whose_name_holds_colons_braces_or_escapes_is_handed(
    redis_cache, uid, settings, test_runners, task
):
    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    manager = TriggerManager(CacheStorageBackend(uid, cache=redis_cache))
    _configure(manager, RecordingRunner.name, {task: "start"})
    manager.fire("start", {"n": 1})
    name = f"{task}#0"
    token = manager.storage.handoff(name)
    assert isinstance(token, str)
    committed_heads.clear()
    with counted_requests() as sent:
        assert run_task(RecordingRunner.payloads(uid)[name], handoff=token) == {"from": task}
    assert [command.upper() for command in sent] == ["EVALSHA", "EVALSHA"]


def test_nothing_is_handed_after_a_save_under_the_lock(redis_cache, uid, settings, test_runners):
    """What the object knows from its last unlocked commit is older than what it
    wrote under the lock since: it hands nothing rather than a stale state."""
    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    manager, _, token = _fired(uid, redis_cache, {"t_a": "start", "t_b": "more"})
    assert isinstance(token, str)
    with manager.storage.acquire_lock():
        manager.fire("more", {"n": 2})
        assert manager.storage.handoff("t_b#0") is None


def test_a_handed_record_whose_key_was_deleted_by_hand_is_not_written_back(
    redis_cache, uid, settings, test_runners
):
    """The record the run took on trust is gone from the cache (deleted by hand):
    the commit's check refuses, nothing is written, and the run reports the
    session incomplete as a read would."""
    from django.core.cache import caches

    from triggers.errors import SessionIncomplete

    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    _, payloads, tokens = _fired_two(uid, redis_cache)
    committed_heads.clear()
    assert run_task(payloads["t_a#0"], handoff=tokens["t_a#0"]) == {"from": "t_a"}
    storage = CacheStorageBackend(uid, cache=redis_cache)
    cache = caches[redis_cache]
    cache.delete(storage.record_key("t_b#0"))
    before = cache.get_many([storage.cache_key, storage.witness_key])
    with pytest.raises(SessionIncomplete):
        run_task(payloads["t_b#0"], handoff=tokens["t_b#0"])
    assert cache.get(storage.record_key("t_b#0")) is None
    assert cache.get_many([storage.cache_key, storage.witness_key]) == before
