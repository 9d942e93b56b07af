"""What the suites that run ``redis-server`` processes of their own share
(:mod:`tests.faults.redis_servers`, :mod:`tests.cluster.servers`): polling with
a deadline, and starting a server that logs to a file, waited for until it
answers PING."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

__all__ = ["log_tail", "poll_until", "popen_logged", "wait_answering"]


def poll_until(check: Callable[[], Any], what: str, deadline: float, every: float) -> Any:
    """Poll ``check()`` every ``every`` seconds until it returns something true, and
    return that; fail the test with ``what`` (and the last error, if any) once
    ``deadline`` seconds passed."""
    end = time.monotonic() + deadline
    last: BaseException | None = None
    while True:
        try:
            found = check()
            if found:
                return found
        except (redis.RedisError, OSError) as exc:
            last = exc
        if time.monotonic() > end:
            error = f" (last error: {last!r})" if last else ""
            pytest.fail(f"{what}: not after {deadline}s{error}")
        time.sleep(every)


def log_tail(path: Path) -> str:
    """The end of a server's log file (empty if there is none)."""
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def popen_logged(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` (a ``redis-server``), its output appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


def wait_answering(
    process: subprocess.Popen[bytes],
    log: Path,
    admin: Callable[[], redis.Redis],
    server: str,
    deadline: float,
    every: float,
) -> None:
    """Poll until ``admin()`` answers PING; fail the test (with the end of ``log``) if
    ``process`` exits first, or after ``deadline``. ``server`` names it in the messages."""

    def answers() -> bool:
        if process.poll() is not None:
            pytest.fail(f"{server} exited with {process.returncode}: {log_tail(log)}")
        with admin() as client:
            return bool(client.ping())

    poll_until(answers, f"{server} answering PING", deadline, every)
