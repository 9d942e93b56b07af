"""A questionnaire session run end to end: ``python -m triggers demo``.

A respondent fills in a questionnaire page by page. The application fires
``firstPageReceived``, ``pageReceived`` once per page and
``questionnaireComplete``; three tasks import what was received:

- ``t_importSubject`` once the first page and the completion are in;
- ``t_importResponses`` after it, and once more for every page;
- ``t_importBrowserMetadata`` after the subject and a page, unless the
  questionnaire runs embedded in an application (``isEmbeddedApplication``).

Each task's result is fired as a trigger with the task's name (a cascade),
which is how the later tasks receive the subject id. ``--fail TASK`` makes
the first run of a task fail; the demo then replays it, as an operator would.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import uuid
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from .context import TaskContext
from .manager import TriggerManager, trigger_managers
from .runners import SynchronousTaskRunner, ThreadingTaskRunner, task_runners
from .storages.cache import CacheStorageBackend
from .task_classes import task
from .types import TaskInstance

__all__ = [
    "DESCRIPTION",
    "WORKFLOW",
    "DemoManager",
    "add_arguments",
    "configure_django",
    "main",
    "run",
]

#: The session's configuration (no ``using``: the demo's manager picks the runner).
WORKFLOW: dict[str, dict[str, Any]] = {
    "t_importSubject": {
        "after": ["firstPageReceived", "questionnaireComplete"],
        "run": "triggers.demo.import_subject",
    },
    "t_importResponses": {
        "after": ["t_importSubject"],
        "andEvery": "pageReceived",
        "run": "triggers.demo.import_responses",
    },
    "t_importBrowserMetadata": {
        "after": ["t_importSubject", "pageReceived"],
        "unless": ["isEmbeddedApplication"],
        "run": "triggers.demo.import_browser_metadata",
    },
}

#: What the respondent sends: the first page carries who they are.
RESPONDENT = {"name": "Ada Lovelace", "email": "ada@example.org"}
USER_AGENT = "Mozilla/5.0 Firefox/128.0"
PAGES = [
    {"page": 1, "answers": {"q1": 4, "q2": 5}},
    {"page": 2, "answers": {"q3": 2, "q4": 3, "q5": 5}},
    {"page": 3, "answers": {"q6": 1}},
]

#: Tasks whose first run fails (set from ``--fail``).
FAIL_FIRST_RUN: set[str] = set()

MANAGER_KEY = "triggers-demo"

DESCRIPTION = """\
Runs a questionnaire session and prints what happens. The application fires
firstPageReceived, pageReceived once per page (three pages) and
questionnaireComplete. Tasks: t_importSubject after firstPageReceived and
questionnaireComplete; t_importResponses after t_importSubject and once per
pageReceived; t_importBrowserMetadata after t_importSubject and pageReceived,
unless isEmbeddedApplication. A finished task fires its own name with its
result. Ends with a table of every task instance; exits 0 once every
instance is resolved.
"""


# --------------------------------------------------------------------------- task bodies


def _fail_first_run(context: TaskContext) -> None:
    task_name, _, number = context.instance_name.partition("#")
    if task_name in FAIL_FIRST_RUN and number == "0":
        raise RuntimeError(f"simulated failure of {context.instance_name} (--fail {task_name})")


@task("triggers.demo.import_subject")
def import_subject(context: TaskContext) -> dict[str, Any]:
    """Create the subject from the first page; its id comes from the e-mail address."""
    _fail_first_run(context)
    respondent = context.trigger_kwargs["firstPageReceived"]["respondent"]
    complete = context.trigger_kwargs["questionnaireComplete"]
    subject_id = zlib.crc32(respondent["email"].encode("utf-8")) % 100_000
    context.logger.info("imported subject %s", subject_id)
    return {"subjectId": subject_id, "name": respondent["name"], "pages": complete["pages"]}


@task("triggers.demo.import_responses")
def import_responses(context: TaskContext) -> dict[str, Any]:
    """Store one page's answers for the subject; returns the page's score."""
    _fail_first_run(context)
    subject = context.trigger_kwargs["t_importSubject"]
    page = context.trigger_kwargs["pageReceived"]
    answers = page["answers"]
    return {
        "subjectId": subject["subjectId"],
        "page": page["page"],
        "imported": len(answers),
        "score": sum(answers.values()),
    }


@task("triggers.demo.import_browser_metadata")
def import_browser_metadata(context: TaskContext) -> dict[str, Any]:
    """Record which browser the subject used (from the first page that reached it)."""
    _fail_first_run(context)
    subject = context.trigger_kwargs["t_importSubject"]
    agent = context.trigger_kwargs["pageReceived"]["userAgent"]
    product = agent.rsplit(" ", 1)[-1]
    browser, _, version = product.partition("/")
    return {"subjectId": subject["subjectId"], "browser": browser, "version": version}


# --------------------------------------------------------------------------- events


class EventPrinter:
    """Prints one line per event, whole lines only, whichever thread reports it."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self.out.write(line + "\n")
            self.out.flush()


class DemoManager(TriggerManager):
    """A manager that reports what happens, through status updates and its runners.

    Tasks rebuild their manager from its registry key, so the demo registers
    this class (``trigger_managers.register``); the cascades that tasks fire
    are then reported too. Its default runner is one of the demo's runners,
    which print each instance's "scheduled" line before they start it, so the
    line comes before the run's own lines with any runner.
    """

    events: EventPrinter | None = None
    #: ``threading`` or ``sync``: which of the demo's runners is the default
    runner = "threading"

    def __init__(self, storage: Any) -> None:
        super().__init__(storage)
        #: the trigger this manager is firing (None while it replays)
        self.firing: str | None = None

    @property
    def default_task_runner_name(self) -> str:
        return f"{MANAGER_KEY}-{DemoManager.runner}"

    def _emit(self, line: str) -> None:
        if DemoManager.events is not None:
            DemoManager.events(_fit(line))

    def announce_scheduled(self, instance: TaskInstance) -> None:
        """Called by the demo's runners just before they start ``instance``."""
        parent = instance.metadata.get(TaskInstance.META_PARENT)
        cause = f"after {self.firing}" if self.firing else f"to replay {parent}"
        self._emit(f"  {instance.name:<{EVENT_WIDTH}} scheduled {cause}")

    def update_instance_status(
        self,
        instance_or_name: TaskInstance | str,
        status: str,
        metadata: Mapping[str, Any] | None = None,
        cascade: bool = False,
        cascade_kwargs: Mapping[str, Any] | None = None,
    ) -> TaskInstance:
        instance = super().update_instance_status(
            instance_or_name, status, metadata, cascade, cascade_kwargs
        )
        detail = ""
        if status == TaskInstance.STATUS_FINISHED:
            detail = " -> " + _compact(instance.metadata.get(TaskInstance.META_RESULT))
        elif status == TaskInstance.STATUS_FAILED:
            detail = ": " + _failure(instance)
        self._emit(f"  {instance.name:<{EVENT_WIDTH}} {status}{detail}")
        return instance

    def fire(
        self, trigger_name: str, trigger_kwargs: Mapping[str, Any] | None = None
    ) -> list[TaskInstance]:
        if trigger_name in WORKFLOW:  # a task's name: its instance finished
            what = "fire " + trigger_name
            self._emit(f"  {what:<{EVENT_WIDTH}} (cascade) {_compact(trigger_kwargs or {})}")
        self.firing = trigger_name
        return super().fire(trigger_name, trigger_kwargs)

    def replay_failed_instance(
        self,
        instance_or_name: TaskInstance | str,
        replacement_kwargs: Mapping[str, Any] | None = None,
    ) -> TaskInstance:
        self.firing = None
        return super().replay_failed_instance(instance_or_name, replacement_kwargs)


def _announce(manager: TriggerManager, instance: TaskInstance) -> None:
    if isinstance(manager, DemoManager):
        manager.announce_scheduled(instance)


class DemoThreadingRunner(ThreadingTaskRunner):
    """The threading runner, printing each instance's "scheduled" line before its thread starts."""

    name = f"{MANAGER_KEY}-threading"

    def run(self, manager: TriggerManager, task_instance: TaskInstance) -> None:
        _announce(manager, task_instance)
        super().run(manager, task_instance)


class DemoSyncRunner(SynchronousTaskRunner):
    """The sync runner, printing each instance's "scheduled" line before it runs it."""

    name = f"{MANAGER_KEY}-sync"

    def run(self, manager: TriggerManager, task_instance: TaskInstance) -> None:
        _announce(manager, task_instance)
        super().run(manager, task_instance)


#: width of the first column of event lines (the longest is a cascade's "fire ...")
EVENT_WIDTH = 28
#: no line the demo prints is longer
LINE_WIDTH = 100


def _fit(line: str) -> str:
    return line if len(line) <= LINE_WIDTH else line[: LINE_WIDTH - 3] + "..."


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)


def _failure(instance: TaskInstance) -> str:
    info = (instance.metadata.get(TaskInstance.META_EXCEPTION_INFO) or "").strip().splitlines()
    return info[-1] if info else str(instance.metadata.get(TaskInstance.META_EXCEPTION_TYPE))


# --------------------------------------------------------------------------- setup


def cache_settings(url: str | None) -> dict[str, Any]:
    """The ``CACHES`` setting for ``--cache`` (None: a local-memory cache)."""
    if url is None:
        return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"--cache takes a redis:// URL, not {url!r}")
    try:
        import django_redis  # noqa: F401

        backend = "django_redis.cache.RedisCache"
    except ImportError:
        backend = "django.core.cache.backends.redis.RedisCache"
    return {"default": {"BACKEND": backend, "LOCATION": url}}


def configure_django(cache_url: str | None = None) -> bool:
    """Configure a minimal Django unless settings are configured already; whether it did.

    ``DJANGO_SETTINGS_MODULE`` is ignored: the demo brings its own settings.
    """
    import django
    from django.conf import settings

    if settings.configured:
        return False
    settings.configure(
        INSTALLED_APPS=["triggers"],
        CACHES=cache_settings(cache_url),
        USE_TZ=True,
        LOGGING={
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"null": {"class": "logging.NullHandler"}},
            # The demo prints what happens; the runners' error logs would repeat it.
            "loggers": {"triggers": {"handlers": ["null"], "propagate": False}},
        },
    )
    django.setup()
    return True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache",
        metavar="URL",
        help="keep the session in Redis at this redis:// URL (default: local memory)",
    )
    parser.add_argument(
        "--fail",
        action="append",
        default=[],
        choices=sorted(WORKFLOW),
        metavar="TASK",
        help="make the first run of TASK fail, then replay it (repeatable)",
    )
    parser.add_argument(
        "--runner",
        choices=["threading", "sync"],
        default="threading",
        help="task runner: a thread per task (default) or the calling thread",
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="fire isEmbeddedApplication first, so t_importBrowserMetadata is abandoned",
    )
    parser.add_argument("--uid", help="session uid (default: a new random one)")


# --------------------------------------------------------------------------- the run


class DemoUnavailable(Exception):
    """The demo cannot run here (a missing client package, an unreachable cache)."""


def _check_cache(url: str | None) -> None:
    """Refuse, in one sentence, a Redis URL the demo cannot use."""
    if url is None:
        return
    try:
        import redis  # noqa: F401
    except ImportError:
        raise DemoUnavailable(
            "--cache needs a Redis client: pip install redis (or django-redis)"
        ) from None
    from django.core.cache import caches

    try:
        caches["default"].get("triggers-demo:probe")
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DemoUnavailable(f"cannot reach Redis at {url}: {reason}") from None


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run the demonstration; 0 once every instance is resolved, 1 otherwise, 2 if it cannot run."""
    try:
        configure_django(args.cache)
        _check_cache(args.cache)
    except (ValueError, DemoUnavailable) as exc:
        err.write(f"python -m triggers demo: {exc}\n")
        return 2
    if args.runner not in task_runners:
        err.write(
            f"python -m triggers demo: runner {args.runner!r} is not registered: install the"
            " package (pip install -e .) so that its entry points exist\n"
        )
        return 2
    trigger_managers.register(MANAGER_KEY, DemoManager)
    task_runners.register(DemoThreadingRunner.name, DemoThreadingRunner)
    task_runners.register(DemoSyncRunner.name, DemoSyncRunner)
    DemoManager.runner = args.runner
    FAIL_FIRST_RUN.clear()
    FAIL_FIRST_RUN.update(args.fail)
    DemoManager.events = emit = EventPrinter(out)

    uid = args.uid or f"demo-{uuid.uuid4().hex[:12]}"
    manager = DemoManager(CacheStorageBackend(uid))
    emit(f"session {uid} (runner: {args.runner}, cache: {args.cache or 'local memory'})")
    manager.update_configuration(WORKFLOW)

    def fire(trigger: str, kwargs: dict[str, Any]) -> None:
        emit(_fit(f"> fire {trigger} {_compact(kwargs)}"))
        manager.fire(trigger, kwargs)
        ThreadingTaskRunner.join_all()

    if args.embedded:
        fire("isEmbeddedApplication", {})
    fire("firstPageReceived", {"respondent": RESPONDENT})
    for page in PAGES:
        fire("pageReceived", {**page, "userAgent": USER_AGENT})
    fire("questionnaireComplete", {"pages": len(PAGES)})

    # What an operator does with failed instances: replay them.
    for _round in range(3):
        failed = [
            i
            for i in CacheStorageBackend(uid).iter_instances()
            if i.status == TaskInstance.STATUS_FAILED
        ]
        if not failed:
            break
        for instance in sorted(failed, key=_order):
            emit(f"> replay {instance.name}")
            manager.replay_failed_instance(instance.name)
            ThreadingTaskRunner.join_all()

    storage = CacheStorageBackend(uid)
    instances = sorted(storage.iter_instances(), key=_order)
    print_table(instances, out)
    if args.cache:
        out.write(f"\nlook at it again: python -m triggers show {uid} --cache {args.cache}\n")
    unresolved = [i.name for i in instances if not i.is_resolved]
    if unresolved:
        out.write(_fit(f"unresolved: {', '.join(unresolved)}") + "\n")
        return 1
    return 0


def _order(instance: TaskInstance) -> tuple[int, int, str]:
    order = list(WORKFLOW)
    task_name, _, number = instance.name.partition("#")
    position = order.index(task_name) if task_name in order else len(order)
    return position, int(number) if number.isdigit() else 0, instance.name


def print_table(instances: Sequence[TaskInstance], out: TextIO) -> None:
    """Every instance and its status; below it, the kwargs it ran with and its result."""
    width = max([len("instance")] + [len(i.name) for i in instances])
    out.write("\n")
    out.write(f"{'instance':<{width}}  status\n")
    out.write(f"{'-' * width}  {'-' * 9}\n")
    for instance in instances:
        metadata = instance.metadata
        ran_with = metadata.get(TaskInstance.META_ACTUAL_KWARGS)
        details: list[tuple[str, str]] = []
        if isinstance(ran_with, dict):
            details += [(f"with {name}", _compact(ran_with[name])) for name in sorted(ran_with)]
        else:
            details.append(("with", "(did not run)"))
        if TaskInstance.META_RESULT in metadata:
            details.append(("result", _compact(metadata[TaskInstance.META_RESULT])))
        elif (
            instance.status == TaskInstance.STATUS_FAILED
            or TaskInstance.META_EXCEPTION_INFO in metadata
        ):
            details.append(("error", _failure(instance)))
        out.write(f"{instance.name:<{width}}  {instance.status}\n")
        if metadata.get(TaskInstance.META_PARENT):
            out.write(f"    replay of {metadata[TaskInstance.META_PARENT]}\n")
        label = max(len(name) for name, _ in details)
        for name, text in details:
            out.write(_fit(f"    {name:<{label}}  {text}") + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m triggers demo",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
