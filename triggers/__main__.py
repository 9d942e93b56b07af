"""Command line: ``python -m triggers <command>``.

Commands:

``demo``
    Run the questionnaire session of :mod:`triggers.demo` and print what
    happens (``python -m triggers demo --help`` for its options). It needs
    no settings.

``show``, ``unresolved``, ``replay``, ``requeue``, ``skip``, ``fire``, ``graph``, ``dump``, ``load``, ``delete``
    The operator commands of ``manage.py triggers`` (:mod:`triggers.operations`).
    They read the project's Django settings, named by ``--settings MODULE``
    or ``DJANGO_SETTINGS_MODULE``; without settings, ``--cache`` may give a
    ``redis://`` URL instead of an alias, as the demo takes it.
    ``graph --config FILE`` needs neither. ``--storage NAME`` picks another
    storage backend of the registry; an unknown name is refused before the
    settings are read.

Exit status: 0 done, 2 bad input (nothing was changed), 3 a replayed or requeued
instance failed again, 1 any other failure.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from . import demo
from .operations import cli
from .operations.common import BadInput, OperatorError, check_storage_name

PROG = "python -m triggers"


def build_parser() -> argparse.ArgumentParser:
    parser = cli.OperatorParser(
        prog=PROG,
        description="Triggers from the command line: a demonstration, and the operator commands.",
        epilog=cli.EXIT_CODES,
        called_from_command_line=True,
    )
    cli.add_verbosity(parser)
    commands = cli.add_commands(parser, from_command_line=True)
    demo_parser = commands.add_parser(
        "demo",
        help="run a demonstration questionnaire session (needs no settings)",
        description=demo.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_arguments(demo_parser)
    return parser


def setup_django(options: dict[str, Any]) -> None:
    """Load the settings the command was given, or configure Django for a cache URL."""
    if not cli.needs_django(options):
        return
    module = options.get("settings") or os.environ.get("DJANGO_SETTINGS_MODULE")
    cache = options.get("cache")
    if cache and "://" in cache:
        if module:
            raise BadInput(f"--cache takes an alias of the settings' CACHES, not {cache!r}")
        try:
            demo.configure_django(cache)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        options["cache"] = "default"
        return
    if not module:
        raise BadInput(
            "no Django settings: give --settings MODULE or set DJANGO_SETTINGS_MODULE"
            " (or --cache redis://HOST:PORT/DB to use a Redis cache without settings)"
        )
    os.environ["DJANGO_SETTINGS_MODULE"] = module
    import django

    try:
        django.setup()
    except ImportError as exc:
        raise BadInput(f"cannot import the settings module {module!r}: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.subcommand == "demo":
        return int(demo.run(args))
    options = vars(args)
    try:
        if cli.needs_django(options):
            check_storage_name(options.get("storage"))
        setup_django(options)
        status = cli.run(options, sys.stdout)
        sys.stdout.flush()  # here, so that a reader gone away is seen here
        return status
    except OperatorError as exc:
        sys.stderr.write(f"{PROG} {args.subcommand}: {exc}\n")
        return exc.status
    except BrokenPipeError:
        # The reader stopped reading (``show UID | head -1``): what it read is
        # all it wanted. Nothing more goes to the closed pipe, not even at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
