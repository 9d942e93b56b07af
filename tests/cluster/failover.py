"""Processes that fire into one session while a test fails its master over.

Each child fires ``hit`` with its own ``(process, n)`` as fast as it can
and writes one line per fire to a file of its own: ``ok n`` once the fire
returned, ``unavailable n`` when it raised ``BackendUnavailable``, ``error
n <repr>`` for anything else. The files are the clients' truth: what was
acknowledged. The session, read afterwards, is the servers' truth: a fire
acknowledged and not stored was lost.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.cache import caches

from tests.cluster.servers import wait_until
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import BackendUnavailable

CONFIG = {"t_hit": {"after": ["hit", "never"], "andEvery": "hit", "run": "hit"}}


def _child(alias: str, uid: str, number: int, folder: Path) -> None:
    stop = folder / "stop"
    with open(folder / f"child-{number}.log", "a", buffering=1) as log:
        manager = TriggerManager(CacheStorageBackend(uid, cache=alias))
        n = 0
        while not stop.exists():
            try:
                manager.fire("hit", {"p": number, "n": n})
            except BackendUnavailable:
                log.write(f"unavailable {n}\n")
                manager = TriggerManager(CacheStorageBackend(uid, cache=alias))
                time.sleep(0.05)
            except Exception as exc:
                line = repr(exc).replace("\n", " ")
                log.write(f"error {n} {line} {traceback.format_exc()!r}\n")
                manager = TriggerManager(CacheStorageBackend(uid, cache=alias))
                time.sleep(0.05)
            else:
                log.write(f"ok {n}\n")
            n += 1


@dataclass
class Outcome:
    """What the clients were told, what the session holds, and what was lost."""

    acknowledged: set[tuple[int, int]] = field(default_factory=set)
    unavailable: set[tuple[int, int]] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    stored: set[tuple[int, int]] = field(default_factory=set)
    acknowledged_after: int = 0

    @property
    def lost(self) -> set[tuple[int, int]]:
        return self.acknowledged - self.stored

    def figures(self) -> dict[str, Any]:
        return {
            "acknowledged": len(self.acknowledged),
            "unavailable": len(self.unavailable),
            "unavailable_but_stored": len(self.unavailable & self.stored),
            "stored": len(self.stored),
            "lost": len(self.lost),
            "acknowledged_after_failover": self.acknowledged_after,
            "other_errors": len(self.errors),
        }


class Firing:
    """``processes`` forked children firing into session ``uid`` of cache ``alias``."""

    def __init__(self, alias: str, uid: str, folder: Path, processes: int = 3) -> None:
        self.alias, self.uid, self.folder = alias, uid, folder
        self.processes = processes
        self.pids: list[int] = []

    def start(self) -> Firing:
        TriggerManager(CacheStorageBackend(self.uid, cache=self.alias)).update_configuration(CONFIG)
        caches[self.alias].close()
        for number in range(self.processes):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    _child(self.alias, self.uid, number, self.folder)
                    code = 0
                finally:
                    os._exit(code)
            self.pids.append(pid)
        return self

    def lines(self) -> list[tuple[int, str, int, str]]:
        found = []
        for number in range(self.processes):
            path = self.folder / f"child-{number}.log"
            if path.exists():
                for line in path.read_text().splitlines():
                    kind, _, rest = line.partition(" ")
                    n, _, detail = rest.partition(" ")
                    if n.isdigit():
                        found.append((number, kind, int(n), detail))
        return found

    def acknowledged(self) -> int:
        return sum(1 for _, kind, _, _ in self.lines() if kind == "ok")

    def wait_for_more(self, count: int, what: str) -> None:
        """Wait until ``count`` more fires are acknowledged than now."""
        start = self.acknowledged()
        wait_until(lambda: self.acknowledged() >= start + count, what)

    def stop(self) -> None:
        (self.folder / "stop").touch()
        for pid in self.pids:
            _, status = os.waitpid(pid, 0)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        self.pids.clear()

    def kill(self) -> None:
        """Whatever happened, no child is left behind."""
        (self.folder / "stop").touch()
        for pid in self.pids:
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self.pids.clear()

    def outcome(self, acknowledged_before_heal: int) -> Outcome:
        result = Outcome()
        for number, kind, n, detail in self.lines():
            if kind == "ok":
                result.acknowledged.add((number, n))
            elif kind == "unavailable":
                result.unavailable.add((number, n))
            else:
                result.errors.append(f"process {number} fire {n}: {detail}")
        result.acknowledged_after = len(result.acknowledged) - acknowledged_before_heal
        stored = CacheStorageBackend(self.uid, cache=self.alias)
        for instance in stored:
            hit = instance.kwargs["hit"]
            result.stored.add((hit["p"], hit["n"]))
        return result


def report(name: str, outcome: Outcome, folder: Path) -> None:
    """Print the figures (and keep them beside the test's files)."""
    figures = {"scenario": name, **outcome.figures()}
    line = json.dumps(figures)
    print(line)
    results = os.environ.get("TRIGGERS_TEST_FAILOVER_RESULTS")
    if results:
        with open(results, "a") as out:
            out.write(line + "\n")
    (folder / "figures.json").write_text(line)
