"""``unresolved UID``: the instances an operator should look at, and why.

Three reasons, from what the session stores: an instance *failed*; it has
been *stuck* ``scheduled`` or ``running`` for longer than a given age (by
the timestamp of that status, which the manager writes in naive UTC); or
its *logs are unresolved* (it logged an error nobody has marked resolved).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..storages.base import BaseTriggerStorage
from ..types import TaskInstance
from .common import Writer, iso, location, plain, shorten, storage_key, timestamp, write_json
from .show import WIDTH, error_line, sorted_instances
from .terminal import printable_data

__all__ = ["DEFAULT_OLDER_THAN", "attention_report", "stuck_since", "unresolved"]

#: seconds an instance may stay scheduled or running before it counts as stuck
DEFAULT_OLDER_THAN = 600.0

REASON_FAILED = "failed"
REASON_STUCK = "stuck"
REASON_LOGS = "unresolved logs"

_IN_PROGRESS = (TaskInstance.STATUS_SCHEDULED, TaskInstance.STATUS_RUNNING)


def stuck_since(instance: TaskInstance) -> datetime | None:
    """When an instance in progress reached its status (naive UTC); None otherwise."""
    if instance.status not in _IN_PROGRESS:
        return None
    for name in (
        instance.status,
        TaskInstance.TIMESTAMP_LAST_MODIFIED,
        TaskInstance.TIMESTAMP_CREATED,
    ):
        when = timestamp(instance, name)
        if when is not None:
            return when
    return None


def _age(since: datetime, now: datetime) -> float:
    aware = since if since.tzinfo is not None else since.replace(tzinfo=timezone.utc)
    return (now - aware).total_seconds()


def attention_report(
    storage: BaseTriggerStorage, older_than: float, now: datetime | None = None
) -> dict[str, Any]:
    """What needs attention in the session, as plain data."""
    now = now or datetime.now(timezone.utc)
    found = []
    for instance in sorted_instances(storage):
        reasons = []
        entry: dict[str, Any] = {"name": instance.name, "task": instance.config.name}
        if instance.status == TaskInstance.STATUS_FAILED:
            reasons.append(REASON_FAILED)
        since = stuck_since(instance)
        if since is not None and _age(since, now) >= older_than:
            reasons.append(REASON_STUCK)
            entry["since"] = iso(since)
            entry["ageSeconds"] = round(_age(since, now), 3)
        if not instance.logs_resolved:
            reasons.append(REASON_LOGS)
            entry["logLevel"] = instance.log_level_name
        if not reasons:
            continue
        entry["status"] = instance.status
        entry["reasons"] = reasons
        error_type = instance.metadata.get(TaskInstance.META_EXCEPTION_TYPE)
        if error_type or instance.status == TaskInstance.STATUS_FAILED:
            entry["error"] = {"type": plain(error_type), "message": error_line(instance)}
        found.append(entry)
    kind, where = location(storage)
    return {
        "uid": storage.uid,
        "storage": storage_key(storage),
        "cache": where if kind == "cache" else None,
        "olderThan": older_than,
        "checkedAt": now.isoformat(),
        "instances": found,
    }


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _why(entry: dict[str, Any]) -> str:
    parts = []
    if REASON_FAILED in entry["reasons"]:
        parts.append("failed")
    if REASON_STUCK in entry["reasons"]:
        since = (entry["since"] or "")[:19].replace("T", " ")
        parts.append(
            f"stuck: {entry['status']} for {_duration(entry['ageSeconds'])} (since {since})"
        )
    if REASON_LOGS in entry["reasons"]:
        parts.append(f"logs unresolved ({entry['logLevel']})")
    return "; ".join(parts)


def unresolved(
    storage: BaseTriggerStorage, out: Writer, older_than: float, as_json: bool = False
) -> None:
    """Print what needs attention; stored names and error messages are printed
    with their control characters escaped (see :mod:`.terminal`)."""
    report = attention_report(storage, older_than)
    if as_json:
        write_json(out, report)
        return
    text = printable_data(report)  # every stored name and message, printable
    uid, entries = text["uid"], text["instances"]
    if not entries:
        out.write(f"session {uid}: nothing needs attention\n")
        return
    out.write(f"session {uid}: {len(entries)} instance(s) need attention\n\n")
    names = max([len("instance")] + [len(e["name"]) for e in entries])
    states = max([len("status")] + [len(e["status"]) for e in entries])
    indent = " " * (names + states + 4)
    out.write(f"{'instance':<{names}}  {'status':<{states}}  why\n")
    out.write(f"{'-' * names}  {'-' * states}  {'-' * 30}\n")
    for entry in entries:
        out.write(f"{entry['name']:<{names}}  {entry['status']:<{states}}  {_why(entry)}\n")
        error = entry.get("error")
        if error:
            message = str(error["message"] or error["type"] or "no error recorded")
            out.write(shorten(indent + message, WIDTH + 60) + "\n")
    footer = []
    if any(e["status"] == TaskInstance.STATUS_FAILED for e in entries):
        footer.append(f"mend a failure with: replay {uid} INSTANCE, or skip {uid} INSTANCE")
    if any(REASON_STUCK in e["reasons"] for e in entries):
        footer.append(
            f"mend a stuck instance with: requeue {uid} INSTANCE"
            f" --stuck-for {report['olderThan']:g} (fails it and replays it)"
        )
    if footer:
        out.write("\n" + "\n".join(footer) + "\n")
