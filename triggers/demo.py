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
import sys
import uuid
import zlib
from collections.abc import Sequence
from typing import Any, TextIO
from urllib.parse import urlsplit

from .demo_report import (
    MANAGER_KEY,
    DemoManager,
    DemoSyncRunner,
    DemoThreadingRunner,
    EventPrinter,
    compact,
    fit,
    print_table,
)
from .logging import LocalLogger
from .manager import trigger_managers
from .storages.cache import CacheStorageBackend
from .tasks.classes import task
from .tasks.context import TaskContext
from .tasks.runners import ThreadingTaskRunner, task_runners
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


DESCRIPTION = """\
Runs a questionnaire session and prints what happens. The application fires
firstPageReceived, pageReceived once per page (three pages) and
questionnaireComplete. Tasks: t_importSubject after firstPageReceived and
questionnaireComplete; t_importResponses after t_importSubject and once per
pageReceived; t_importBrowserMetadata after t_importSubject and pageReceived,
unless isEmbeddedApplication. A finished task fires its own name with its
result. Ends with a table of every task instance; exits 0 once every
instance is resolved (or, with --no-replay, when only failures are left).
"""


# --------------------------------------------------------------------------- task bodies


def _fail_first_run(context: TaskContext) -> None:
    task_name, _, number = context.instance_name.partition("#")
    if task_name in FAIL_FIRST_RUN and number == "0":
        message = f"simulated failure of {context.instance_name} (--fail {task_name})"
        # Logged as a task logs why it fails, so its logs await an operator; to a
        # logger of its own, so the demo's output stays its report alone.
        with context.get_logger_context(LocalLogger()) as logger:
            logger.error(message)
        raise RuntimeError(message)


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


# --------------------------------------------------------------------------- setup


def cache_settings(url: str | None) -> dict[str, Any]:
    """The ``CACHES`` setting for ``--cache`` (None: a local-memory cache)."""
    if url is None:
        return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"--cache takes a redis:// URL, not {url!r}")
    database = urlsplit(url).path.strip("/") if not url.startswith("unix://") else ""
    if database and not database.isdigit():
        raise ValueError(
            f"--cache: the database of a redis:// URL is a number (redis://HOST:PORT/0),"
            f" not {database!r}"
        )
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
    parser.add_argument(
        "--no-replay",
        action="store_true",
        help="leave failed instances failed, to try the operator commands on them",
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
        emit(fit(f"> fire {trigger} {compact(kwargs)}"))
        manager.fire(trigger, kwargs)
        ThreadingTaskRunner.join_all()

    if args.embedded:
        fire("isEmbeddedApplication", {})
    fire("firstPageReceived", {"respondent": RESPONDENT})
    for page in PAGES:
        fire("pageReceived", {**page, "userAgent": USER_AGENT})
    fire("questionnaireComplete", {"pages": len(PAGES)})

    if not args.no_replay:
        _replay_failed(manager, uid, emit)
    storage = CacheStorageBackend(uid)
    instances = sorted(storage.iter_instances(), key=_order)
    print_table(instances, out)
    if args.cache:
        out.write(f"\nlook at it again: python -m triggers show {uid} --cache {args.cache}\n")
    unresolved = [i.name for i in instances if not i.is_resolved]
    left = [i.name for i in instances if i.status == TaskInstance.STATUS_FAILED]
    if args.no_replay and left and len(left) == len(unresolved):
        out.write(fit(f"left failed (--no-replay): {', '.join(left)}") + "\n")
        return 0
    if unresolved:
        out.write(fit(f"unresolved: {', '.join(unresolved)}") + "\n")
        return 1
    return 0


def _replay_failed(manager: DemoManager, uid: str, emit: EventPrinter) -> None:
    """What an operator does with failed instances: replay them (three rounds at most)."""
    for _round in range(3):
        failed = [
            i
            for i in CacheStorageBackend(uid).iter_instances()
            if i.status == TaskInstance.STATUS_FAILED
        ]
        if not failed:
            return
        for instance in sorted(failed, key=_order):
            emit(f"> replay {instance.name}")
            manager.replay_failed_instance(instance.name)
            ThreadingTaskRunner.join_all()


def _order(instance: TaskInstance) -> tuple[int, int, str]:
    order = list(WORKFLOW)
    task_name, _, number = instance.name.partition("#")
    position = order.index(task_name) if task_name in order else len(order)
    return position, int(number) if number.isdigit() else 0, instance.name


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m triggers demo",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
