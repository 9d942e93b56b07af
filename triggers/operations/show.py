"""``show UID``: a session at a glance, as a table or as JSON.

Reading takes no lock and writes nothing, so it is safe on a live session.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from ..manager import TriggerManager
from ..storages.base import BaseTriggerStorage
from ..types import TaskConfig, TaskInstance
from .common import (
    LIFETIME_UNKNOWN,
    Writer,
    instance_order,
    iso,
    lifetime,
    location,
    plain,
    shorten,
    storage_key,
    timestamp,
    write_json,
)
from .terminal import json_line, printable, printable_data

__all__ = ["error_line", "render_table", "session_report", "show", "sorted_instances"]

#: text lines are kept to this width (JSON output has everything)
WIDTH = 100


def sorted_instances(storage: BaseTriggerStorage) -> list[TaskInstance]:
    """Every instance, oldest first (then by task and number)."""
    instances = list(storage.iter_instances())

    def key(instance: TaskInstance) -> tuple[datetime, tuple[str, int, str]]:
        created = timestamp(instance, TaskInstance.TIMESTAMP_CREATED) or datetime.max
        return created, instance_order(instance.name)

    return sorted(instances, key=key)


def error_line(instance: TaskInstance) -> str | None:
    """The last line of a failure's traceback (``Type: message``), or its type."""
    info = instance.metadata.get(TaskInstance.META_EXCEPTION_INFO)
    lines = str(info).strip().splitlines() if info else []
    if lines:
        return lines[-1].strip()
    kind = instance.metadata.get(TaskInstance.META_EXCEPTION_TYPE)
    return str(kind) if kind else None


def _instance_row(instance: TaskInstance) -> dict[str, Any]:
    metadata = instance.metadata
    return {
        "name": instance.name,
        "task": instance.config.name,
        "status": instance.status,
        "created": iso(timestamp(instance, TaskInstance.TIMESTAMP_CREATED)),
        "lastModified": iso(timestamp(instance, TaskInstance.TIMESTAMP_LAST_MODIFIED)),
        "logLevel": instance.log_level_name,
        "logsResolved": instance.logs_resolved,
        "errorType": plain(metadata.get(TaskInstance.META_EXCEPTION_TYPE)),
        "error": error_line(instance) if metadata.get(TaskInstance.META_EXCEPTION_TYPE) else None,
        "parent": plain(metadata.get(TaskInstance.META_PARENT)),
        "depth": instance.depth,
    }


def _task_row(config: TaskConfig) -> dict[str, Any]:
    return {
        "name": config.name,
        "after": sorted(config.after - {config.and_every} if config.and_every else config.after),
        "andEvery": config.and_every,
        "unless": config.unless_sorted,
        "run": config.run,
        "using": config.using,
        "withParams": plain(config.with_params),
    }


def session_report(storage: BaseTriggerStorage) -> dict[str, Any]:
    """The session as plain data: instances, tasks and the latest kwargs of each trigger."""
    kind, where = location(storage)
    report = {
        "uid": storage.uid,
        "storage": storage_key(storage),
        "cache": where if kind == "cache" else None,
        "instances": [_instance_row(i) for i in sorted_instances(storage)],
        "tasks": [_task_row(storage.tasks[name]) for name in sorted(storage.tasks)],
        "latestKwargs": plain(storage.latest_kwargs),
    }
    # Seconds the session lives after its last save (None: it never expires),
    # known once the session is read; left out for a backend that does not say.
    seconds = lifetime(storage)
    if seconds is not LIFETIME_UNKNOWN:
        report["lifetime"] = seconds
    if hasattr(storage, "expires_in"):
        report.update(expiry(storage.expires_in()))
    report["defaultRunner"] = TriggerManager(storage).default_task_runner_name
    return report


def expiry(left: float | None, now: float | None = None) -> dict[str, Any]:
    """``expiresIn`` (seconds) and ``expiresAt`` (ISO 8601, UTC) of a session
    with ``left`` seconds to live; both None when it never expires (``inf``)
    or that cannot be told (None)."""
    if left is None or math.isinf(left):
        return {"expiresIn": None, "expiresAt": None}
    at = datetime.fromtimestamp((now or time.time()) + left, timezone.utc)
    return {"expiresIn": round(left, 3), "expiresAt": at.replace(microsecond=0).isoformat()}


def duration(seconds: float) -> str:
    """Seconds in the largest whole unit: "300 s", "2 h", "7 days"."""
    for size, unit in ((86400, " days"), (3600, " h"), (60, " min")):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count}{' day' if count == 1 and size == 86400 else unit}"
    return f"{seconds:g} s"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], out: Writer) -> None:
    """Columns as wide as their widest cell, two spaces apart."""
    widths = [max([len(h)] + [len(row[n]) for row in rows]) for n, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    out.write(line(headers) + "\n")
    out.write(line(["-" * w for w in widths]) + "\n")
    for row in rows:
        out.write(line(row) + "\n")


def _when(text: str | None) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM:SS`` (UTC), or "-"."""
    return text[:19].replace("T", " ") if text else "-"


def _headline(report: dict[str, Any]) -> str:
    if "lifetime" not in report:
        lives = "lifetime unknown"
    elif report["lifetime"] is None:
        lives = "never expires"
    else:
        lives = f"lives at least {duration(report['lifetime'])} after a save"
    if report.get("expiresAt"):
        at = report["expiresAt"][:19].replace("T", " ")
        lives += f"; expires {at} UTC (in {report['expiresIn']:.0f} s)"
    elif report.get("lifetime") is not None and "expiresIn" in report:
        lives += "; when it expires is unknown"
    where = f"cache {report['cache']}" if report["cache"] is not None else f"storage {report['storage']}"
    return (
        f"session {report['uid']} ({where}):"
        f" {len(report['tasks'])} tasks, {len(report['instances'])} instances; {lives}\n\n"
    )


def _instances_table(instances: list[dict[str, Any]], out: Writer) -> None:
    if not instances:
        out.write("no instances yet\n")
        return
    headers = [
        "instance",
        "task",
        "status",
        "created (UTC)",
        "last modified",
        "log level",
        "error type",
    ]
    rows = [
        [
            row["name"],
            row["task"],
            row["status"],
            _when(row["created"]),
            _when(row["lastModified"]),
            "-" if row["logLevel"] == "NOTSET" else row["logLevel"],
            _error_cell(row),
        ]
        for row in instances
    ]
    render_table(headers, rows, out)


def _error_cell(row: dict[str, Any]) -> str:
    """The error's type with its message (``RuntimeError: boom``), cut to fit; "-" for none."""
    if not row["errorType"]:
        return "-"
    kind = str(row["errorType"]).rpartition(".")[2]
    error = str(row["error"] or "")
    text = error if error.startswith(kind) else f"{kind}: {error}" if error else kind
    return shorten(text, 50)


def _tasks_table(tasks: list[dict[str, Any]], out: Writer, runner: str) -> None:
    rows = [
        [
            t["name"],
            ", ".join(t["after"]) or "-",
            t["andEvery"] or "-",
            ", ".join(t["unless"]) or "-",
            t["run"],
            t["using"] or f"{runner} (default)",
        ]
        for t in tasks
    ]
    render_table(["task", "after", "and every", "unless", "run", "using"], rows, out)


def _latest_kwargs(latest: dict[str, Any], out: Writer) -> None:
    """A line for each trigger: its name and its latest kwargs as JSON, cut to fit."""
    if not latest:
        out.write("  no trigger has fired\n")
    names = {name: printable(name) for name in latest}
    width = max([len(shown) for shown in names.values()] + [4])
    for name in sorted(latest):
        out.write(shorten(f"  {names[name]:<{width}}  {json_line(latest[name])}", WIDTH) + "\n")


def show(storage: BaseTriggerStorage, out: Writer, as_json: bool = False) -> None:
    """Print the session, as tables or as JSON; stored text never reaches the
    terminal with a control character in it (see :mod:`.terminal`)."""
    report = session_report(storage)
    if as_json:
        write_json(out, report)
        return
    text = printable_data(report)  # every stored name and message, printable
    out.write(_headline(text))
    _instances_table(text["instances"], out)
    out.write("\ntasks\n")
    _tasks_table(text["tasks"], out, text["defaultRunner"])
    out.write("\nlatest kwargs (cut to fit; --json shows them whole)\n")
    _latest_kwargs(report["latestKwargs"], out)
