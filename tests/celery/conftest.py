"""Celery workers for the tests of the ``celery`` runner, started as subprocesses.

Every test here needs Celery, and most a broker. Without either a test is
skipped with the reason, or fails under ``TRIGGERS_TEST_REQUIRE_SERVICES=1``
(``tox -e celery`` sets it in CI). The ordinary environments leave this
directory out (``--ignore=tests/celery``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.celery_app.config import QUEUES, REDIS_BROKER, make_app
from triggers import CacheStorageBackend, TriggerManager

ROOT = Path(__file__).resolve().parents[2]
#: how long a worker may take to start, and a workflow to end
DEADLINE = 60.0


def _missing(message: str) -> None:
    if os.environ.get("TRIGGERS_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " (TRIGGERS_TEST_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def require_celery() -> None:
    """Skip (or fail, when services are required) where Celery is not installed."""
    try:
        import celery  # noqa: F401
    except ImportError:
        _missing("Celery is not installed (pip install -e '.[test,celery]'; tox -e celery)")


def require_broker(url: str) -> None:
    """Skip (or fail) when nothing listens at the broker's address."""
    from tests.settings import reachable

    parsed = urlparse(url)
    port = parsed.port or {"redis": 6379, "amqp": 5672}[parsed.scheme]
    if not reachable(parsed.hostname or "127.0.0.1", port):
        _missing(f"the broker {parsed.scheme}://{parsed.hostname}:{port} is not reachable")


def require_redis_broker() -> None:
    """Skip (or fail) without Celery, or without the Redis broker of the tests."""
    require_celery()
    require_broker(REDIS_BROKER)


def _die_with_parent() -> None:
    """In the worker, before it runs: get SIGTERM if the test process dies (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _test_database_name(alias: str) -> str:
    """The name of database ``alias`` as this process uses it (the test database, once made)."""
    from django.conf import settings
    from django.db import connections

    if alias not in settings.DATABASES:
        return "test"
    return str(connections[alias].settings_dict["NAME"])


#: the test project: its Celery app (``-A``) and its Django settings
TEST_PROJECT = ("tests.celery_app", "tests.celery_app.settings")


class Worker:
    """One ``celery worker`` subprocess (solo pool) on a project's app (the test project's
    unless ``project`` says otherwise), importing the ``include`` modules too."""

    def __init__(
        self,
        name: str,
        broker: str,
        queues: tuple[str, ...],
        log_dir: Path,
        project: tuple[str, str] = TEST_PROJECT,
        include: tuple[str, ...] = (),
        pool: str = "solo",
    ) -> None:
        self.name = name
        self.broker = broker
        self.queues = queues
        #: the pool option: "solo", or "prefork:N" for N child processes
        self.pool = pool
        self.log_path = log_dir / f"worker-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.project = project
        self.include = include

    @property
    def hostname(self) -> str:
        return f"{self.name}@triggers-tests"

    def start(self) -> None:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": self.project[1],
            "TRIGGERS_TEST_CELERY_BROKER": self.broker,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            # Sessions of the database backend: the test database, if one was made.
            "TRIGGERS_TEST_PG_NAME": _test_database_name("pg"),
        }
        command = [
            sys.executable, "-m", "celery", "-A", self.project[0], "worker",
            *self._pool_options(), "--loglevel=INFO", "-n", self.hostname, "-Q", ",".join(self.queues),
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]
        if self.include:
            command += ["--include", ",".join(self.include)]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )

    def _pool_options(self) -> list[str]:
        pool, _, children = self.pool.partition(":")
        return [f"--pool={pool}", *([f"--concurrency={children}"] if children else [])]

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"worker {self.name} exited ({self.process.returncode}):\n{self.log()}")

    def wait_ready(self, deadline: float) -> None:
        """Until the worker says it is ready to consume, or fail with its log."""
        while " ready." not in self.log():
            self.check_alive()
            if time.monotonic() > deadline:
                pytest.fail(f"worker {self.name} not ready after {DEADLINE}s:\n{self.log()}")
            time.sleep(0.1)

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()  # a warm shutdown
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def purge(app: Any, queues: tuple[str, ...]) -> None:
    """Empty the test queues of messages an interrupted run may have left."""
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for name in queues:
            queue = app.amqp.queues[name](channel)
            queue.declare()
            queue.purge()


@contextlib.contextmanager
def running_workers(
    app: Any,
    broker: str,
    log_dir: Path,
    *,
    project: tuple[str, str] = TEST_PROJECT,
    include: tuple[str, ...] = (),
    pool: str = "solo",
    **queues_of: tuple[str, ...],
) -> Iterator[dict[str, Worker]]:
    """Start one worker per name (consuming the queues given), and always stop them all."""
    purge(app, tuple(sorted({*QUEUES, *(q for queues in queues_of.values() for q in queues)})))
    workers = {
        name: Worker(name, broker, queues, log_dir, project, include, pool)
        for name, queues in queues_of.items()
    }
    try:
        for worker in workers.values():
            worker.start()
        deadline = time.monotonic() + DEADLINE
        for worker in workers.values():
            worker.wait_ready(deadline)
        yield workers
    finally:
        for worker in workers.values():
            worker.stop()


def wait_until(
    read: Callable[[], dict[str, str]],
    expected: dict[str, str],
    workers: dict[str, Worker],
    timeout: float = DEADLINE,
) -> dict[str, str]:
    """Poll ``read()`` (instance name -> status) until it holds ``expected``, or fail showing it.

    The only wait on the workers: bounded, and never a guess at how long a task takes.
    """
    deadline = time.monotonic() + timeout
    while True:
        seen = read()
        if all(seen.get(name) == status for name, status in expected.items()):
            return seen
        for worker in workers.values():
            worker.check_alive()
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {w.name}\n{w.log()[-6000:]}" for w in workers.values())
            pytest.fail(f"after {timeout}s expected {expected}\nsaw {seen}\n{logs}")
        time.sleep(0.1)


def celery_manager(
    settings: Any, app: Any, storage: Any, workflow: dict[str, Any] | None = None
) -> TriggerManager:
    """A manager on ``storage`` (configured with ``workflow``, if given), set up as in a
    Triggers 2.x project: no runner setting (so the celery runner, as in a worker), and
    ``app`` sending. ``settings`` is pytest-django's fixture."""
    del settings.TRIGGERS_DEFAULT_RUNNER
    settings.TRIGGERS_CELERY_APP = app
    manager = TriggerManager(storage)
    if workflow is not None:
        manager.update_configuration(workflow)
    return manager


def statuses(manager: TriggerManager) -> Callable[[], dict[str, str]]:
    """What reads the statuses (instance name -> status) of ``manager``'s session in the
    shared Redis cache, anew at each call: a ``read`` for :func:`wait_until`."""

    def read() -> dict[str, str]:
        storage = CacheStorageBackend(manager.storage.uid, cache="redis")
        return {instance.name: instance.status for instance in storage.iter_instances()}

    return read


@pytest.fixture(scope="module")
def redis_app() -> Any:
    """The test project's Celery app on the Redis broker (skipped, or failed, without either)."""
    require_redis_broker()
    from tests.celery_app import tasks  # noqa: F401  (the test process sends them)

    return make_app(REDIS_BROKER)


@pytest.fixture(autouse=True)
def _celery_installed() -> None:
    require_celery()


@pytest.fixture(scope="package", autouse=True)
def _forget_the_test_projects_tasks() -> Iterator[None]:
    """Once these tests are done, unregister their tasks, so the rest of a run sees the suite's only."""
    yield
    from triggers.task import registered_tasks

    for name, cls in list(registered_tasks.items()):
        if cls.__module__.startswith(("tests.celery_app.", "tests.celery.")):
            del registered_tasks[name]
