"""The cross-process check: forked processes fire at once into one session, nothing is lost."""

from __future__ import annotations

import multiprocessing
import traceback
import unittest
from collections.abc import Callable
from typing import Any

from ..manager import TriggerManager
from ..storages.base import BaseTriggerStorage
from .base import KitBase
from .support import check, check_equal, fail

__all__ = ["ProcessChecks"]

_Factory = Callable[[str], BaseTriggerStorage]


def process_configuration(processes: int, fires: int) -> dict[str, Any]:
    """A task per (process, firing), and one ``andEvery`` task all processes make instances of.

    Every task also waits for ``never``, so none becomes ready: no runner runs.
    """
    config: dict[str, Any] = {"t_tick": {"after": ["never"], "andEvery": "tick", "run": "kit.tick"}}
    for process in range(processes):
        for n in range(fires):
            config[f"t_p{process}_{n}"] = {"after": [f"p{process}_{n}", "never"], "run": "kit.hit"}
    return config


def fire_from_child(factory: _Factory, uid: str, process: int, fires: int, results: Any) -> None:
    """The body of one child: fire its own triggers and ``tick``, then report."""
    try:
        storage = factory(uid)
        manager = TriggerManager(storage)
        for n in range(fires):
            manager.fire(f"p{process}_{n}", {"process": process, "n": n})
            manager.fire("tick", {"process": process, "n": n})
        storage.close()
    except BaseException:
        results.put((process, traceback.format_exc()))
        raise
    results.put((process, None))


class ProcessChecks(KitBase):
    """Several processes fire distinct triggers through TriggerManager at the same time."""

    def _fork_context(self) -> Any:
        if not self.locks_across_processes:
            raise unittest.SkipTest(
                f"{type(self).__name__}.locks_across_processes is false: the backend's"
                " lock does not reach other processes"
            )
        if "fork" not in multiprocessing.get_all_start_methods():
            raise unittest.SkipTest("the cross-process check forks, and this platform cannot")
        return multiprocessing.get_context("fork")

    def _checked_factory(self, uid: str) -> _Factory:
        factory = self.storage_factory()
        made = factory(uid)
        try:
            check_equal(type(made), type(self.make_storage(uid)), "the class storage_factory() makes")
        finally:
            made.close()
        return factory

    def _run_children(self, context: Any, factory: _Factory, uid: str) -> None:
        results = context.SimpleQueue()
        fires = self.kit_fires_per_process
        children = [
            context.Process(target=fire_from_child, args=(factory, uid, number, fires, results))
            for number in range(self.kit_processes)
        ]
        for child in children:
            child.start()
        for child in children:
            child.join(self.kit_process_timeout)
            if child.is_alive():
                child.kill()
                child.join()
        reports = {}
        while not results.empty():
            number, error = results.get()
            reports[number] = error
        failures = [f"process {n}:\n{error}" for n, error in sorted(reports.items()) if error]
        check(not failures, "firing from other processes failed:\n" + "\n".join(failures))
        exit_codes = [child.exitcode for child in children]
        check_equal(exit_codes, [0] * len(children), "the exit codes of the firing processes")

    def test_processes_fire_at_once(self) -> None:
        context = self._fork_context()
        processes, fires = self.kit_processes, self.kit_fires_per_process
        with self.kit_session() as session:
            factory = self._checked_factory(session.uid)
            manager = TriggerManager(session.open())
            manager.update_configuration(process_configuration(processes, fires))
            manager.storage.close()
            self._run_children(context, factory, session.uid)
            self._check_nothing_lost(session.open(), processes, fires)

    def _check_nothing_lost(self, storage: BaseTriggerStorage, processes: int, fires: int) -> None:
        instances = {instance.name: instance for instance in storage}
        ticks = processes * fires
        expected = {f"t_p{p}_{n}#0" for p in range(processes) for n in range(fires)}
        expected |= {f"t_tick#{n}" for n in range(ticks)}
        missing, extra = sorted(expected - set(instances)), sorted(set(instances) - expected)
        if missing or extra:
            fail(f"instances lost: {missing}; instances not expected: {extra}")
        for p in range(processes):
            for n in range(fires):
                trigger, kwargs = f"p{p}_{n}", {"process": p, "n": n}
                check_equal(instances[f"t_p{p}_{n}#0"].kwargs, {trigger: kwargs}, f"the kwargs of t_p{p}_{n}#0")
                check_equal(storage.latest_kwargs.get(trigger), kwargs, f"latest_kwargs[{trigger!r}]")
        fired = sorted((i.kwargs["tick"]["process"], i.kwargs["tick"]["n"])
                       for name, i in instances.items() if name.startswith("t_tick#"))
        check_equal(fired, [(p, n) for p in range(processes) for n in range(fires)], "the ticks recorded")
