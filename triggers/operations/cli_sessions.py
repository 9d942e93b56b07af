"""The arguments of the commands that work across sessions: ``list``,
``clearsessions`` and ``copy`` (their work is in :mod:`.listing` and :mod:`.copying`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from . import copying, listing
from .common import BadInput, Place, Writer, read_lines

__all__ = ["COMMANDS", "define"]

Options = Mapping[str, Any]
Define = Callable[[Any, str, str, Callable[[Options, Writer], None]], argparse.ArgumentParser]

#: the commands defined here, in the order the help lists them
COMMANDS = ("list", "clearsessions", "copy")


def _place(options: Options, prefix: str = "", storage: str = "database") -> Place:
    return Place(
        options.get(prefix + "storage") or storage,
        options.get(prefix + "cache"),
        options.get(prefix + "layout"),
        options.get(prefix + "using"),
    )


def _list(options: Options, out: Writer) -> None:
    listing.list_sessions(options, _place(options), out)


def _clear(options: Options, out: Writer) -> None:
    listing.clear_sessions(options, _place(options), out)


def _copy(options: Options, out: Writer) -> None:
    source = _place(options, "from_", storage="cache")
    target = _place(options, "to_")
    given = [u for u in (options.get("uids") or [])]
    if options.get("uids_from"):
        given += read_lines(options["uids_from"], "--uids-from")
    if bool(given) == bool(options.get("all")):
        raise BadInput("give the uids to copy (UID ..., or --uids-from FILE) or --all, one of them")
    uids = copying.every_uid(source) if options.get("all") else given
    copying.copy_sessions(uids, source, target, out, options["replace"], options["json"])


def _database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        metavar="NAME",
        default="database",
        help="the storage backend holding sessions (default: %(default)s; only it can do this)",
    )
    parser.add_argument("--using", metavar="ALIAS", help="the database alias (default: routers')")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _list_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--failed", action="store_true", help="with a failed instance")
    parser.add_argument("--unresolved", action="store_true", help="with an unresolved instance")
    parser.add_argument(
        "--stuck",
        type=float,
        metavar="SECONDS",
        help="with an instance scheduled or running for longer than SECONDS",
    )
    parser.add_argument("--task", metavar="NAME", help="with an instance of task NAME")
    parser.add_argument("--modified-after", metavar="ISO", help="last saved at or after ISO")
    parser.add_argument("--modified-before", metavar="ISO", help="last saved before ISO")
    parser.add_argument("--page", type=int, default=1, metavar="N", help="default: %(default)s")
    parser.add_argument(
        "--per-page", type=int, default=listing.DEFAULT_PER_PAGE, metavar="N", help="default: %(default)s"
    )


def _copy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uids", metavar="UID", nargs="*", help="the sessions to copy")
    parser.add_argument("--uids-from", metavar="FILE", help="uids to copy, one a line (- for stdin)")
    parser.add_argument(
        "--all", action="store_true", help="every session the source can list (Redis, database)"
    )
    for side, default in (("from", "cache"), ("to", "database")):
        parser.add_argument(
            f"--{side}-storage", metavar="NAME", default=default, help="default: %(default)s"
        )
        parser.add_argument(f"--{side}-cache", metavar="ALIAS", help="cache backend only")
        parser.add_argument(f"--{side}-using", metavar="ALIAS", help="database backend only")
    parser.add_argument(
        "--to-layout",
        choices=["split", "single", "paged"],
        help="cache backend only (default: split; paged: Redis only)",
    )
    parser.add_argument("--replace", action="store_true", help="overwrite sessions in the target")
    parser.add_argument("--json", action="store_true", help="print what was done as JSON")


def define(commands: Any, define_command: Define) -> None:
    """Add the commands to the operator commands' subparsers."""
    p = define_command(
        commands, "list", "list the sessions of a database, newest change first", _list
    )
    _list_options(p)
    _database_options(p)
    p = define_command(
        commands, "clearsessions", "delete the expired sessions of a database, in batches", _clear
    )
    p.add_argument("--batch-size", type=int, default=500, metavar="N", help="default: %(default)s")
    _database_options(p)
    p = define_command(
        commands, "copy", "copy sessions to another storage, holding both locks", _copy
    )
    _copy_options(p)
