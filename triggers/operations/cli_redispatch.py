"""The arguments of ``redispatch``: send again the instances scheduled too long
(the work is in :mod:`.resend`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import InvalidArgument
from .common import BadInput, OperatorError, Place, open_session, write_json
from .resend import check_age, resend_sessions

__all__ = ["COMMANDS", "define"]

Options = Mapping[str, Any]
Define = Callable[[Any, str, str, Callable[[Options, Any], None]], argparse.ArgumentParser]

#: the commands defined here
COMMANDS = ("redispatch",)


def _uids(options: Options, place: Place) -> list[str]:
    given, every = list(options.get("uids") or []), bool(options.get("all"))
    if bool(given) == every:
        raise BadInput("give the sessions to check (UID ...) or --all, one of them")
    if every:
        from .copying import every_uid

        return list(every_uid(place))
    for uid in given:
        open_session(uid, place)  # BadInput for a session that is not there, before any send
    return given


def _redispatch(options: Options, out: Any) -> None:
    try:
        older_than = check_age(options["older_than"])
    except InvalidArgument as exc:
        raise BadInput(str(exc)) from None
    place = Place.from_options(options)
    names = options.get("instances") or None
    reports = resend_sessions(_uids(options, place), place, older_than, names)
    failed = {r["uid"]: r["errors"] for r in reports if r["errors"]}
    if options["json"]:
        write_json(out, {"olderThan": older_than, "sessions": reports})
    else:
        for report in reports:
            sent = report["redispatched"]
            out.write(
                f"session {report['uid']}: {len(sent)} sent again {' '.join(sent)}".rstrip() + "\n"
            )
            for name, error in report["errors"].items():
                out.write(f"  {name or 'session'}: {error}\n")
    if failed:
        raise OperatorError(f"could not send every instance again: {sorted(failed)}")


def _from_the_cli_table(parser: argparse.ArgumentParser) -> None:
    """Where the sessions are (the options every command takes)."""
    parser.add_argument("--storage", metavar="NAME", default="cache", help="default: %(default)s")
    parser.add_argument("--cache", metavar="ALIAS", help="cache storage backend only")
    parser.add_argument("--using", metavar="ALIAS", help="database storage backend only")


def define(commands: Any, define_command: Define) -> None:
    """Add ``redispatch`` to the operator commands' subparsers."""
    p = define_command(
        commands,
        "redispatch",
        "send again the instances scheduled longer than --older-than (a second delivery is"
        " refused at start)",
        _redispatch,
    )
    p.add_argument("uids", metavar="UID", nargs="*", help="the sessions to check")
    p.add_argument("--all", action="store_true", help="every session the storage can list")
    p.add_argument(
        "--older-than",
        type=float,
        required=True,
        metavar="SECONDS",
        help="send only instances scheduled this long or longer (more than the longest a"
        " message may wait in the queue)",
    )
    p.add_argument(
        "--instance",
        dest="instances",
        action="append",
        metavar="INSTANCE",
        help="only this instance (repeatable)",
    )
    _from_the_cli_table(p)
    p.add_argument("--json", action="store_true", help="print what was done as JSON")
