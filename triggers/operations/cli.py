"""The operator commands' arguments and dispatch, shared by ``manage.py triggers``
and ``python -m triggers``.

Every command prints one line on stderr and exits 2 for input it refuses
(nothing is changed then), exits 1 for any other failure, 0 otherwise.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from django.core.management.base import CommandError, CommandParser

from . import (
    actions,
    cli_redispatch,
    cli_sessions,
    delete,
    dumpcheck,
    graph,
    show,
    transfer,
    unresolved,
)
from .common import (
    DATABASE_STORAGE,
    DEFAULT_STORAGE,
    EXIT_BAD_INPUT,
    EXIT_OK,
    TOO_DEEP,
    BadInput,
    OperatorError,
    Place,
    Writer,
    json_object,
    open_session,
    storage_class,
)
from .quiet import task_tracebacks
from .terminal import TerminalWriter, printable

__all__ = [
    "COMMANDS",
    "EXIT_CODES",
    "OperatorError",
    "OperatorParser",
    "add_commands",
    "add_verbosity",
    "parser_class",
    "needs_django",
    "run",
    "settings_options",
]

EXIT_CODES = (
    "exit status: 0 done, 2 bad input (nothing was changed), 3 a replayed or requeued"
    " instance failed again, 1 any other failure"
)

Options = Mapping[str, Any]
Handler = Callable[[Options, Writer], None]


class OperatorParser(CommandParser):
    """A parser that refuses bad arguments in one line (and exit status 2).

    From a command line it prints the line and exits; called from code
    (``call_command``) it raises CommandError with return code 2.
    """

    #: used when Django does not pass ``called_from_command_line`` down to subparsers
    from_command_line: bool | None = None
    called_from_command_line: bool | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.called_from_command_line is None:
            self.called_from_command_line = self.from_command_line

    def error(self, message: str) -> NoReturn:
        if self.called_from_command_line:
            self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")
        raise CommandError(f"{self.prog}: {message}", returncode=EXIT_BAD_INPUT)


def parser_class(from_command_line: bool | None) -> type[OperatorParser]:
    return type("OperatorParser", (OperatorParser,), {"from_command_line": from_command_line})


def _session(options: Options, layout: bool = False) -> Any:
    return open_session(options["uid"], Place.from_options(options, layout))


def _show(options: Options, out: Writer) -> None:
    show.show(_session(options), out, as_json=options["json"])


def _seconds(value: float, option: str) -> float:
    # float() reads "nan", "inf" and "1e999" too: none is an age to compare with
    if not (math.isfinite(value) and value >= 0):
        raise BadInput(f"{option} must be a finite number of seconds, 0 or more, not {value:g}")
    return value


def _unresolved(options: Options, out: Writer) -> None:
    older_than = _seconds(options["older_than"], "--older-than")
    unresolved.unresolved(_session(options), out, older_than, as_json=options["json"])


def _replay(options: Options, out: Writer) -> None:
    kwargs = json_object(options["kwargs"], "--kwargs")
    actions.replay(_session(options, True), options["instance"], out, kwargs, options["json"])


def _requeue(options: Options, out: Writer) -> None:
    stuck_for = _seconds(options["stuck_for"], "--stuck-for")
    storage = _session(options, True)
    actions.requeue(storage, options["instance"], out, stuck_for, options["json"])


def _skip(options: Options, out: Writer) -> None:
    result = json_object(options["result"], "--result")
    storage = _session(options, True)
    actions.skip(storage, options["instance"], out, options["cascade"], result, options["json"])


def _fire(options: Options, out: Writer) -> None:
    kwargs = json_object(options["kwargs"], "--kwargs")
    actions.fire(_session(options, True), options["trigger"], out, kwargs, options["json"])


def _graph(options: Options, out: Writer) -> None:
    uid, config = options["uid"], options["config"]
    if (uid is None) == (config is None):
        raise BadInput("give a session UID or --config FILE (one of them)")
    if config is not None:
        configs = graph.configs_from_file(config)
        out.write(graph.render(configs, options["format"], title=config))
        return
    storage = _session(options)
    statuses = graph.task_statuses(storage)
    configs = [storage.tasks[name] for name in storage.tasks]
    out.write(graph.render(configs, options["format"], statuses, title=f"session {uid}"))


def _dump(options: Options, out: Writer) -> None:
    transfer.dump(_session(options), out, options["output"])


def _delete(options: Options, out: Writer) -> None:
    place = Place.from_options(options)
    delete.delete(options["uid"], out, place, options["yes"], options["json"])


def _load(options: Options, out: Writer) -> None:
    path = options["file"]
    try:
        document = transfer.read_document(path)
    except RecursionError:
        raise BadInput(f"{path} is not valid JSON: {TOO_DEEP}") from None
    dumpcheck.check_document(document, path)
    place = Place.from_options(options, layout=True)
    transfer.load(document, out, place, options["uid"], options["replace"], options["json"])


def _cache(parser: argparse.ArgumentParser) -> None:
    """Where the sessions are: a storage backend, and the cache backend's cache."""
    parser.add_argument(
        "--storage",
        metavar="NAME",
        help="the storage backend holding sessions: its key in the triggers.storages"
        f" registry (default: {DEFAULT_STORAGE!r}; {DATABASE_STORAGE!r} where"
        " TRIGGERS_CACHE_ALIAS is None)",
    )
    parser.add_argument(
        "--cache",
        metavar="ALIAS",
        help="the cache alias holding sessions (default: TRIGGERS_CACHE_ALIAS, else 'default');"
        " cache storage backend only",
    )
    parser.add_argument(
        "--using",
        metavar="ALIAS",
        help="the database alias holding sessions (default: as the database routers say);"
        " database storage backend only",
    )


def _layout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--layout",
        choices=["split", "single", "paged"],
        help="the layout to write the session in (default: TRIGGERS_CACHE_LAYOUT, else split;"
        " paged: Redis only);"
        " cache storage backend only",
    )


def _as_json(parser: argparse.ArgumentParser, what: str = "print JSON instead of text") -> None:
    parser.add_argument("--json", action="store_true", help=what)


def _define(commands: Any, name: str, help: str, handler: Handler) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help, description=help[0].upper() + help[1:] + ".", epilog=EXIT_CODES
    )
    parser.set_defaults(handler=handler)
    return parser


def _mender(commands: Any, name: str, help: str, handler: Handler) -> argparse.ArgumentParser:
    """A command that changes a session: a uid, and where and how to write it."""
    parser = _define(commands, name, help, handler)
    parser.add_argument("uid", metavar="UID")
    _cache(parser)
    _layout(parser)
    _as_json(parser, "print what was done as JSON")
    return parser


def _define_all(commands: Any) -> None:
    p = _define(commands, "show", "show a session: its instances, tasks and latest kwargs", _show)
    p.add_argument("uid", metavar="UID")
    _cache(p)
    _as_json(p, "print the session as JSON (datetimes as ISO 8601 text)")

    p = _define(
        commands, "unresolved", "list what needs attention in a session, and why", _unresolved
    )
    p.add_argument("uid", metavar="UID")
    p.add_argument(
        "--older-than",
        type=float,
        default=unresolved.DEFAULT_OLDER_THAN,
        metavar="SECONDS",
        help="count an instance scheduled or running this long as stuck (default: %(default)g)",
    )
    _cache(p)
    _as_json(p)

    p = _mender(commands, "replay", "replay a failed instance: run a clone of it", _replay)
    p.add_argument("instance", metavar="INSTANCE")
    p.add_argument("--kwargs", metavar="JSON", help="run the clone with these kwargs instead")

    p = _mender(
        commands,
        "requeue",
        "fail an instance stuck scheduled or running, and replay it (one commit)",
        _requeue,
    )
    p.add_argument("instance", metavar="INSTANCE")
    p.add_argument(
        "--stuck-for",
        type=float,
        required=True,
        metavar="SECONDS",
        help="requeue it only if it has been scheduled or running at least this long",
    )

    p = _mender(commands, "skip", "skip a failed instance", _skip)
    p.add_argument("instance", metavar="INSTANCE")
    p.add_argument("--cascade", action="store_true", help="then fire the task's name")
    p.add_argument("--result", metavar="JSON", help="the result to record (and cascade)")

    p = _mender(commands, "fire", "fire a trigger in a session", _fire)
    p.add_argument("trigger", metavar="TRIGGER")
    p.add_argument("--kwargs", metavar="JSON", help="the trigger's kwargs (a JSON object)")

    p = _define(commands, "graph", "draw a workflow as Mermaid or Graphviz DOT", _graph)
    p.add_argument("uid", metavar="UID", nargs="?", help="a session (tasks coloured by status)")
    p.add_argument(
        "--config", metavar="FILE", help="a JSON task configuration instead of a session"
    )
    p.add_argument("--format", choices=graph.FORMATS, default="mermaid", help="default: mermaid")
    _cache(p)

    p = _define(commands, "dump", "write a session as JSON, to load it elsewhere", _dump)
    p.add_argument("uid", metavar="UID")
    p.add_argument("--output", metavar="FILE", help="write to FILE instead of standard output")
    _cache(p)

    p = _define(commands, "load", "write a dumped session into the storage", _load)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--uid", metavar="NEW_UID", help="load it under this uid (default: its own)")
    p.add_argument("--replace", action="store_true", help="overwrite a session of that uid")
    _cache(p)
    _layout(p)
    _as_json(p, "print what was loaded as JSON")

    p = _define(commands, "delete", "delete a whole session, so that its uid starts over", _delete)
    p.add_argument("uid", metavar="UID")
    p.add_argument("--yes", action="store_true", help="do it (without: say what would be deleted)")
    _cache(p)
    _as_json(p, "print what was deleted as JSON")

    cli_sessions.define(commands, _define)
    cli_redispatch.define(commands, _define)


#: the operator commands, in the order their help lists them
COMMANDS = (
    "show",
    "unresolved",
    "replay",
    "requeue",
    "skip",
    "fire",
    "graph",
    "dump",
    "load",
    "delete",
    *cli_sessions.COMMANDS,
    *cli_redispatch.COMMANDS,
)


def settings_options(parser: argparse.ArgumentParser, django_admin: bool = False) -> None:
    """Options that name the project: given after the command as well as before it.

    Their defaults are suppressed, so that a value given before the command
    (which Django's own parser reads) is not reset by the command's parser.
    """
    parser.add_argument(
        "--settings",
        metavar="MODULE",
        default=argparse.SUPPRESS,
        help="the Django settings module (default: DJANGO_SETTINGS_MODULE)",
    )
    add_verbosity(parser, default=argparse.SUPPRESS)
    if django_admin:
        parser.add_argument("--pythonpath", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        parser.add_argument(
            "--traceback", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )


def add_verbosity(parser: argparse.ArgumentParser, default: Any = 1) -> None:
    """``-v``/``--verbosity``, as Django's commands take it (2 and up: task tracebacks)."""
    parser.add_argument(
        "-v",
        "--verbosity",
        type=int,
        choices=[0, 1, 2, 3],
        default=default,
        help="2 or more: print the tracebacks of tasks this command runs (default: 1)",
    )


def add_commands(
    parser: argparse.ArgumentParser,
    from_command_line: bool | None = None,
    django_admin: bool = False,
) -> Any:
    """Add the operator commands to ``parser`` as subcommands; returns the subparsers."""
    commands = parser.add_subparsers(
        dest="subcommand",
        metavar="command",
        required=True,
        parser_class=parser_class(from_command_line),
    )
    _define_all(commands)
    for name in COMMANDS:
        settings_options(commands.choices[name], django_admin)
    return commands


def needs_django(options: Options) -> bool:
    """Whether the command reads a storage (``graph --config`` alone does not)."""
    return not (
        options.get("subcommand") == "graph" and options.get("config") and not options.get("uid")
    )


def run(options: Options, out: Writer) -> int:
    """Run the chosen command; OperatorError (with its exit status) for a failure.

    What the command prints goes through a :class:`~.terminal.TerminalWriter`,
    and the message of a failure is made one printable line: either may
    carry stored text, which must not drive the operator's terminal.
    """
    handler: Handler = options["handler"]
    terminal = TerminalWriter(out, json_output=options.get("subcommand") == "dump")
    try:
        if needs_django(options):
            storage_class(Place.from_options(options, layout=True))  # refused before any work
        with task_tracebacks(options.get("verbosity", 1)):
            handler(options, terminal)
    except OperatorError as exc:
        exc.args = (printable(str(exc)),)
        raise
    except BrokenPipeError:
        raise  # the reader went away: for the entry point, not a failure of the command
    except Exception as exc:
        raise OperatorError(printable(f"{type(exc).__name__}: {exc}")) from exc
    return EXIT_OK
