"""A session that ends and starts again under the same uid, or that Redis
takes back to an older state: a long-lived process must not commit what it
remembers of the old one over the new one.

Two worker processes, A and B, live through each test and fire trigger
``go`` on command (each fire adds one instance whose kwargs say who fired
and its number n); a fire counts as acknowledged once ``fire()`` returned
in the worker. Each runs on a private ``redis-server``
(:mod:`tests.faults.redis_servers`), through django-redis, through
Django's own RedisCache and through django-redis in the paged layout, once
keeping one TriggerManager for its whole life and once making a new one
per fire (the process still remembers what it committed). Between their fires the session's state goes away or back:

- every key of the database deleted by hand (FLUSHDB);
- the session deleted through ``CacheStorageBackend.delete()``;
- the session expired (every key gone);
- Redis restarted from an RDB snapshot that lacks A's last fire;
- a replica that lacks A's last fire promoted, the clients moved to it.

Then the session, read by a new storage object, must hold every fire
acknowledged after that once, none of the fires the server lost, and be
one session: instances #0..#n-1, no gap, nothing from the state that went
away. No timing is asserted; every wait polls with a deadline.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection

import pytest

from tests.faults.conftest import make_cache
from tests.faults.proxy import FaultProxy
from tests.faults.redis_servers import RedisServer, redis_servers, wait_until
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import BackendUnavailable, TriggersError

FORK = multiprocessing.get_context("fork")
#: ``using``: the test plugin's runner, which runs nothing
CONFIG = {"t_rec": {"after": ["go"], "andEvery": "go", "run": "noop", "using": "recording"}}
#: A's fires before the session goes away, and B's after. As many: where the
#: witness restarts from 1 with a new session, A then remembers the very
#: generation B's last fire reaches (with fewer before, A's commit is refused
#: for an older generation, and A reads the new session as it should).
BEFORE = 3
AFTER = 3
#: the longest a worker may take to answer one command (seconds)
HUNG = 30.0
#: the lifetime of the expiring sessions (seconds), and of the one that follows
SHORT, LONG = 2, 600

#: django-redis, Django's RedisCache, and django-redis in the paged layout
KINDS = ["redis", "dredis", "redis+paged"]
MANAGERS = ["one-manager", "manager-per-fire"]


# --------------------------------------------------------------------------- the workers


def _storage(kind: str, cache: object, uid: str, **kwargs: object) -> CacheStorageBackend:
    """A storage of session ``uid`` on ``cache``, in the layout ``kind`` names (split if none)."""
    layout = kind.partition("+")[2] or "split"
    return CacheStorageBackend(uid, cache=cache, layout=layout, **kwargs)


def _cache(kind: str, address: str) -> object:
    """The cache ``kind`` names (its client library), at ``address``."""
    return make_cache(kind.partition("+")[0], address)


def _fire(manager: TriggerManager, who: str, n: int) -> str:
    """Fire once, again once if the cache was unreachable (a connection the
    server's restart or failover dropped); what to tell the test."""
    try:
        manager.fire("go", {"go": {"by": who, "n": n}})
        return "ok"
    except BackendUnavailable as exc:
        first = f"{type(exc).__name__}: {exc}"
    try:
        manager.fire("go", {"go": {"by": who, "n": n}})
        return f"ok, retried after {first}"
    except Exception:  # noqa: BLE001 - reported to the test
        return f"failed after {first}, then:\n{traceback.format_exc()}"


def _serve(conn: Connection, kind: str, address: str, uid: str, who: str, per_fire: bool) -> None:
    """A worker's life: ``fire <n>`` (answered once fire() returned), ``stop``."""
    cache = _cache(kind, address)
    manager = TriggerManager(_storage(kind, cache, uid))
    try:
        while True:
            command = conn.recv()
            if command == "stop":
                return
            if per_fire:
                manager = TriggerManager(_storage(kind, cache, uid))
            try:
                conn.send(_fire(manager, who, int(command.split()[1])))
            except Exception:  # noqa: BLE001 - reported to the test
                conn.send(f"failed:\n{traceback.format_exc()}")
    finally:
        cache.close()
        conn.close()


class Worker:
    """Process ``who`` (A or B), firing into session ``uid`` at ``address``."""

    def __init__(self, who: str, kind: str, address: str, uid: str, per_fire: bool) -> None:
        self.who = who
        self.conn, theirs = FORK.Pipe()
        self.process = FORK.Process(
            target=_serve, args=(theirs, kind, address, uid, who, per_fire), daemon=True
        )
        self.process.start()
        theirs.close()
        self.acknowledged: list[str] = []

    def fire(self, *numbers: int) -> None:
        """Fire once per number, each acknowledged before the next is sent."""
        for n in numbers:
            self.conn.send(f"fire {n}")
            if not self.conn.poll(HUNG):
                pytest.fail(f"{self.who}'s fire {n} got no answer within {HUNG}s")
            try:
                reply = self.conn.recv()
            except EOFError:
                pytest.fail(f"worker {self.who} died during its fire {n}")
            if not reply.startswith("ok"):
                pytest.fail(f"{self.who}'s fire {n} was not acknowledged: {reply}")
            self.acknowledged.append(f"{self.who}{n}")

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send("stop")
            self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(10)
        self.conn.close()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=MANAGERS)
def workers(
    request: pytest.FixtureRequest, kind: str
) -> Iterator[Callable[..., tuple[Worker, Worker]]]:
    """Starts A and B on a session (forked before the test writes any of it,
    so they remember nothing of it); both are stopped, or killed, at the end."""
    started: list[Worker] = []

    def start(address: str, uid: str) -> tuple[Worker, Worker]:
        per_fire = request.param == "manager-per-fire"
        for who in "AB":
            started.append(Worker(who, kind, address, uid, per_fire))
        return started[-2], started[-1]

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def server(tmp_path) -> Iterator[RedisServer]:
    with redis_servers(tmp_path, "main") as (main,):
        yield main


# --------------------------------------------------------------------------- the session


def configure(kind: str, address: str, uid: str, timeout: float = LONG) -> None:
    """Make the session (task t_rec), as the application does, from the test process."""
    cache = _cache(kind, address)
    try:
        TriggerManager(_storage(kind, cache, uid, timeout=timeout)).update_configuration(CONFIG)
    finally:
        cache.close()


def instances(kind: str, address: str, uid: str) -> list[tuple[int, str]]:
    """(number, who and n) of each instance, as a new storage object reads the session."""
    cache = _cache(kind, address)
    try:
        storage = _storage(kind, cache, uid)
        found = []
        for name in storage.instances:
            kwargs = storage[name].kwargs  # {trigger name: the kwargs it fired with}
            go = (kwargs.get("go") or {}).get("go") or {}
            label = f"{go['by']}{go['n']}" if {"by", "n"} <= go.keys() else repr(kwargs)
            found.append((int(name.rpartition("#")[2]), label))
        return sorted(found)
    except TriggersError as exc:
        pytest.fail(f"the session does not read: {exc!r}")
    finally:
        cache.close()


def listing(found: list[tuple[int, str]]) -> str:
    return ", ".join(f"#{number} {label}" for number, label in found) or "no instance"


def check_session(found: list[tuple[int, str]], kept: list[str], lost: list[str]) -> None:
    """``kept`` each once, nothing of ``lost``, nothing else, numbered #0..#n-1."""
    labels = [label for _, label in found]
    problems = [
        *(
            f"{fire} is there {labels.count(fire)} times"
            for fire in kept
            if labels.count(fire) != 1
        ),
        *(f"{fire} is back, though the server lost it" for fire in lost if fire in labels),
        *(f"{label} is from no acknowledged fire" for label in labels if label not in kept + lost),
    ]
    numbers = [number for number, _ in found]
    if numbers != list(range(len(found))):
        problems.append(f"the instances are not numbered #0..#{len(found) - 1}")
    assert not problems, (
        "; ".join(problems) + f". Expected {', '.join(kept)}; the session reads: {listing(found)}"
    )


def check_new_session(
    kind: str, address: str, uid: str, a: Worker, b: Worker, old: list[str]
) -> None:
    """The session holds the fires acknowledged after it started again, and
    nothing of the one that went away (``old``: A's fires before)."""
    after = b.acknowledged + a.acknowledged[len(old) :]
    check_session(instances(kind, address, uid), kept=after, lost=old)


# --------------------------------------------------------------------------- the session goes away


def test_every_key_deleted_by_hand(server: RedisServer, workers, kind: str, uid: str) -> None:
    """A fires, an operator deletes every key (FLUSHDB), B fires into the new
    session, A fires again: nothing of A's old session comes back."""
    a, b = workers(server.address, uid)
    configure(kind, server.address, uid)
    a.fire(*range(BEFORE))
    old = list(a.acknowledged)
    server.flushdb()
    assert server.dbsize() == 0
    configure(kind, server.address, uid)
    b.fire(*range(AFTER))
    a.fire(BEFORE)
    check_new_session(kind, server.address, uid, a, b, old)


def test_session_deleted_through_the_api(server: RedisServer, workers, kind: str, uid: str) -> None:
    """The same, the session deleted by ``CacheStorageBackend.delete()`` in the test process."""
    a, b = workers(server.address, uid)
    configure(kind, server.address, uid)
    a.fire(*range(BEFORE))
    old = list(a.acknowledged)
    cache = _cache(kind, server.address)
    try:
        assert _storage(kind, cache, uid).delete() is True
    finally:
        cache.close()
    assert server.dbsize() == 0, f"delete() left keys: {server.keys()}"
    configure(kind, server.address, uid)
    b.fire(*range(AFTER))
    a.fire(BEFORE)
    check_new_session(kind, server.address, uid, a, b, old)


def test_session_expired(server: RedisServer, workers, kind: str, uid: str) -> None:
    """A fires into a session of a short lifetime; once every key expired, the
    uid starts again (with a long lifetime, so that it lasts until read), B
    fires, A fires: nothing of the expired session comes back."""
    a, b = workers(server.address, uid)
    configure(kind, server.address, uid, timeout=SHORT)  # the workers keep the stored lifetime
    a.fire(*range(BEFORE))
    old = list(a.acknowledged)
    wait_until(lambda: server.dbsize() == 0, "every key of the session expired")
    configure(kind, server.address, uid, timeout=LONG)
    b.fire(*range(AFTER))
    a.fire(BEFORE)
    check_new_session(kind, server.address, uid, a, b, old)


# --------------------------------------------------------------------------- the session goes back


def test_restart_from_an_rdb_snapshot(server: RedisServer, workers, kind: str, uid: str) -> None:
    """A and B fire, the server saves, A fires again; Redis restarts from the
    snapshot (A's last fire lost), B fires, A fires: B's fire stays, A's lost
    one does not come back."""
    a, b = workers(server.address, uid)
    configure(kind, server.address, uid)
    a.fire(0)
    b.fire(0)
    server.save()
    a.fire(1)
    server.restart_from_rdb()
    survived = instances(kind, server.address, uid)
    assert [label for _, label in survived] == ["A0", "B0"], (
        f"the restarted server does not hold the snapshot: {listing(survived)}"
    )
    b.fire(1)
    a.fire(2)
    check_session(instances(kind, server.address, uid), kept=["A0", "B0", "B1", "A2"], lost=["A1"])


def test_failover_to_a_replica(tmp_path, workers, kind: str, uid: str) -> None:
    """Clients reach the master through a proxy; the replica, in sync, is cut
    off (its link through a proxy of its own dropped), A fires, the master
    goes down, the replica is promoted and the proxy pointed at it; B fires,
    A fires: B's fire stays, A's unreplicated one does not come back."""
    with redis_servers(tmp_path, "master", "replica") as (master, replica):
        clients = FaultProxy(("127.0.0.1", master.port))
        link = FaultProxy(("127.0.0.1", master.port))
        a, b = workers(clients.address, uid)  # forked before the proxies' threads start
        with clients, link:
            replica.replicate("127.0.0.1", link.port)
            configure(kind, clients.address, uid)
            a.fire(0)
            b.fire(0)
            replica.wait_in_sync_with(master)
            link.drop()
            wait_until(lambda: not replica.link_up(), "the replica cut off from the master")
            a.fire(1)
            master.shutdown_nosave()
            replica.promote()
            clients.retarget("127.0.0.1", replica.port)
            survived = instances(kind, replica.address, uid)
            assert [label for _, label in survived] == ["A0", "B0"], (
                f"the promoted replica does not hold what was replicated: {listing(survived)}"
            )
            b.fire(1)
            a.fire(2)
        found = instances(kind, replica.address, uid)
    check_session(found, kept=["A0", "B0", "B1", "A2"], lost=["A1"])
