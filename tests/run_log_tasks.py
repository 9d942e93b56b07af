"""Tasks whose every body execution appends a line to a log file, for the tests that
count executions across processes (tests/faults/test_run_ownership.py and
tests/celery/test_run_ownership.py; the Celery test project imports this module),
and the session configuration both run (:func:`runlog_config`).

What a body does besides is told by its ``withParams`` (under ``runlog``):

- ``path``: the log file (each body appends ``<instance> <pid> start``, and
  ``<instance> <pid> end`` as it returns, in one ``write`` each);
- ``pause``: the run of the instance of that name stops its own process
  (SIGSTOP) once it started: after its ``running`` commit;
- ``die``: the run of the instance of that name kills its own process
  (SIGKILL) mid-body;
- ``die_before_sends``: the run of the instance of that name returns
  normally, and its process is killed (SIGKILL) once its ``finished`` commit landed, before the messages of
  its cascade are sent (by a receiver of the ``trigger_fired`` signal, which
  the manager sends between the two).
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

from triggers.signals import trigger_fired
from triggers.task import TaskContext, TriggerTask, task

#: the result key that has the receiver kill the process before the cascade's sends
DIE_BEFORE_SENDS = "dieBeforeSends"


def _params(context: TaskContext) -> dict[str, Any]:
    """The task's ``withParams`` under ``runlog`` (merged into the trigger kwargs)."""
    return dict(context.trigger_kwargs.get("runlog") or {})


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode() + b"\n")
    finally:
        os.close(fd)


def stop_here(signum: int) -> None:
    """Stop (SIGSTOP) or kill (SIGKILL) this process, at this very point of this thread.

    Sent to the calling thread (not the process), so this thread takes it as its
    call returns: sent to the process, another thread may take it while this one
    runs on for a moment (into the run's next commit).
    """
    signal.pthread_kill(threading.get_ident(), signum)


def logged_body(context: TaskContext) -> dict[str, Any]:
    params = _params(context)
    name, path = context.instance_name, params["path"]
    _append(path, f"{name} {os.getpid()} start")
    if params.get("pause") == name:
        stop_here(signal.SIGSTOP)  # resumed by the test (SIGCONT)
    if params.get("die") == name:
        stop_here(signal.SIGKILL)
    _append(path, f"{name} {os.getpid()} end")
    result: dict[str, Any] = {"by": name, "pid": os.getpid()}
    if params.get("die_before_sends") == name:
        result[DIE_BEFORE_SENDS] = True
    return result


@task("tests.runlog")
def runlog(context: TaskContext) -> dict[str, Any]:
    """A body that logs each execution (and pauses or dies when told)."""
    return logged_body(context)


class RunLogAcksLate(TriggerTask):
    """The same body, its Celery task acknowledged late and rejected (redelivered) when
    its worker process is lost."""

    name = "tests.runlog_acks_late"
    acks_late = True
    reject_on_worker_lost = True

    def _run(self, context: TaskContext) -> dict[str, Any]:
        return logged_body(context)


def _die_before_sends(sender: Any, trigger_kwargs: dict[str, Any], **kwargs: Any) -> None:
    if trigger_kwargs.get(DIE_BEFORE_SENDS):
        stop_here(signal.SIGKILL)


trigger_fired.connect(_die_before_sends, dispatch_uid=__name__)


def executions(path: Path) -> dict[str, int]:
    """How many times each instance's body started, from the log."""
    counts: dict[str, int] = {}
    if not path.exists():
        return counts
    for line in path.read_text().splitlines():
        name, _pid, what = line.split()
        if what == "start":
            counts[name] = counts.get(name, 0) + 1
    return counts


def pid_of(path: Path, name: str) -> int | None:
    """The process that started ``name``'s body (the first to, by the log)."""
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        logged, pid, what = line.split()
        if logged == name and what == "start":
            return int(pid)
    return None


def runlog_config(log: Path, run: str = "tests.runlog", **runlog: Any) -> dict[str, Any]:
    """A session configuration of logged bodies: ``t_first`` (run by ``run``) after ``go``,
    ``t_next`` after it, and ``t_every`` after ``go`` and every ``t_first``; each body
    logs to ``log`` and is told ``runlog`` (``pause``, ``die``, ``die_before_sends``)."""
    params = {"runlog": {"path": str(log), **runlog}}
    return {
        "t_first": {"after": ["go"], "run": run, "withParams": params},
        "t_next": {"after": ["t_first"], "run": "tests.runlog", "withParams": params},
        "t_every": {
            "after": ["go"],
            "andEvery": "t_first",
            "run": "tests.runlog",
            "withParams": params,
        },
    }
