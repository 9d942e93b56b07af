"""Sessions whose uids look like another session's keys stay apart, on every cache.

A split session's parts hang off its head key: the witness (``:w``), its
instance records (``:i:<instance>``) and its task table (``:t:<version>``,
the version a digest of the table that anyone can compute). Uids may hold
':', so the uids ``k:w``, ``k:i:t_a#0`` and ``k:t:<v>`` name keys of the
session ``k`` unless a session's keys are kept apart from its uid's text.

For every order of creating the four sessions, each is configured and fired
into (interleaved), then each must read back exactly its own state, take
later fires, and survive the deletion of any of the others. Every session
has a configuration of its own (``withParams`` names it), so a session
reading another's task table shows.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import pickle
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from django.core.cache import caches

from tests.runner_support import RecordingRunner
from triggers import CacheStorageBackend, TriggerManager
from triggers.types import TaskConfig

#: fires into each session after it is configured, interleaved between the sessions
FIRES = 3
#: the orders in which the four sessions are created: all of them
ORDERS = list(itertools.permutations(range(4)))
#: the four uids of a family, as failures name them
LABELS = ["k", "k:w", "k:i:t_a#0", "k:t:<v>"]


def config(uid: str) -> dict[str, Any]:
    """The session's own configuration: t_a runs after every "go", on a runner
    that only records what it is given (no task body runs)."""
    return {
        "t_a": {
            "after": ["go"],
            "andEvery": "go",
            "run": "tests.add",
            "using": RecordingRunner.name,
            "withParams": {"session": uid},
        }
    }


def old_table_version(uid: str) -> str:
    """The version the task table of session ``uid`` has where a session's keys
    hang off its uid: a BLAKE2b digest (16 bytes) of the pickled table."""
    tasks = {
        name: TaskConfig.from_definition(name, definition).serialize()
        for name, definition in sorted(config(uid).items())
    }
    table = {"tasks": tasks, "triggers": {"go": sorted(tasks)}}
    return hashlib.blake2b(pickle.dumps(table, 4), digest_size=16).hexdigest()


def family(k: str) -> list[str]:
    """``k``, and the uids that name its witness, first record and task table."""
    return [k, k + ":w", k + ":i:t_a#0", k + ":t:" + old_table_version(k)]


def storage(uid: str, alias: str, layout: str) -> CacheStorageBackend:
    return CacheStorageBackend(uid, cache=alias, layout=layout)


@contextlib.contextmanager
def doing(what: str) -> Iterator[None]:
    """Say what was being done if it raises."""
    try:
        yield
    except Exception as exc:
        raise AssertionError(f"{what}: {type(exc).__name__}: {exc}") from exc


def create_and_fire(uids: list[str], alias: str, layout: str, fires: int) -> None:
    """Each session created in the order of ``uids``, then fired into ``fires`` times,
    interleaved (each round starts at another session), each by the manager that
    created it (which remembers what it committed)."""
    managers = {}
    for uid in uids:
        with doing(f"configuring {uid!r}"):
            managers[uid] = TriggerManager(storage(uid, alias, layout))
            managers[uid].update_configuration(config(uid))
    for n in range(fires):
        for uid in uids[n % 4 :] + uids[: n % 4]:
            with doing(f"fire {n} into {uid!r}"):
                ready = managers[uid].fire("go", {"session": uid, "n": n})
            assert [i.name for i in ready] == [f"t_a#{n}"], f"fire {n} into {uid!r} readied {ready}"


def assert_own_state(uid: str, alias: str, layout: str, fires: int) -> None:
    """Session ``uid``, read afresh, holds its own configuration, one instance
    per fire with that fire's kwargs, and the last fire's kwargs."""
    with doing(f"reading {uid!r}"):
        read = storage(uid, alias, layout)
        kwargs = {i.name: (i.config.name, i.kwargs) for i in read.iter_instances()}
        tasks = dict(read.tasks)
        latest = read.latest_kwargs
    expected = {f"t_a#{n}": ("t_a", {"go": {"session": uid, "n": n}}) for n in range(fires)}
    assert kwargs == expected, f"{uid!r} holds the instances {kwargs}"
    own = {"t_a": TaskConfig.from_definition("t_a", config(uid)["t_a"])}
    assert tasks == own, f"{uid!r} holds the tasks {[c.serialize() for c in tasks.values()]}"
    last = {"go": {"session": uid, "n": fires - 1}} if fires else {}
    assert latest == last, f"{uid!r} holds the latest kwargs {latest}"


def each_order(check: Callable[[int, list[str], list[str]], None]) -> None:
    """``check(number, family, uids)`` for every creation order of a new family;
    fails at the end, listing every order that failed and how (``k`` and ``<v>``
    standing for that family's uid and table version)."""
    failures = []
    for number, order in enumerate(ORDERS):
        names = family("test-" + uuid.uuid4().hex)
        uids = [names[i] for i in order]
        try:
            check(number, names, uids)
        except AssertionError as exc:
            version = names[3].rpartition(":")[2]
            short = str(exc).splitlines()[0].replace(version, "<v>").replace(names[0], "k")
            failures.append(f"created {[LABELS[i] for i in order]}: {short}")
    assert not failures, f"{len(failures)} of {len(ORDERS)} orders failed:\n" + "\n".join(failures)


def test_sessions_whose_uids_name_each_others_keys_stay_apart(any_cache, layout, test_runners):
    def check(number: int, names: list[str], uids: list[str]) -> None:
        create_and_fire(uids, any_cache, layout, FIRES)
        for uid in uids:
            assert_own_state(uid, any_cache, layout, FIRES)
        # Later fires, each from a storage object that has read nothing.
        for uid in reversed(uids):
            with doing(f"a later fire into {uid!r}"):
                manager = TriggerManager(storage(uid, any_cache, layout))
                manager.fire("go", {"session": uid, "n": FIRES})
        for uid in uids:
            assert_own_state(uid, any_cache, layout, FIRES + 1)

    each_order(check)


def test_deleting_one_session_leaves_the_others_intact(any_cache, layout, test_runners):
    def check(number: int, names: list[str], uids: list[str]) -> None:
        create_and_fire(uids, any_cache, layout, 2)
        # Each of the four is the one deleted in six of the orders.
        victim = names[number % 4]
        deleted = storage(victim, any_cache, layout)
        with doing(f"deleting {victim!r}"):
            deleted.delete()
            left_keys = caches[any_cache].get_many([deleted.cache_key, deleted.witness_key])
        assert left_keys == {}, f"{victim!r} once deleted left {sorted(left_keys)}"
        with doing(f"reading {victim!r} once deleted"):
            gone = storage(victim, any_cache, layout)
            left = list(gone.iter_instances()), gone.latest_kwargs
        assert left == ([], {}), f"{victim!r} once deleted holds {left}"
        others = [uid for uid in uids if uid != victim]
        for uid in others:
            assert_own_state(uid, any_cache, layout, 2)
        # The deleted session starts anew; the others go on where they were.
        with doing(f"creating {victim!r} again"):
            manager = TriggerManager(storage(victim, any_cache, layout))
            manager.update_configuration(config(victim))
            manager.fire("go", {"session": victim, "n": 0})
        for uid in others:
            with doing(f"a fire into {uid!r} after {victim!r} was deleted"):
                manager = TriggerManager(storage(uid, any_cache, layout))
                manager.fire("go", {"session": uid, "n": 2})
        assert_own_state(victim, any_cache, layout, 1)
        for uid in others:
            assert_own_state(uid, any_cache, layout, 3)

    each_order(check)
