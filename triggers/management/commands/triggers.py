"""``manage.py triggers COMMAND``: the operator commands (see ``docs/operators.rst``)."""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...operations import cli


class Command(BaseCommand):
    help = (
        "Look at and mend trigger sessions: show, unresolved, replay, requeue, skip, fire, graph,"
        " dump, load, delete; list, clearsessions and copy across sessions. " + cli.EXIT_CODES + "."
    )
    # A warning of the system checks would add lines to every command's output.
    requires_system_checks: list[str] = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # Django builds the parser; refusals of the arguments it reads itself
        # (an unknown option, no command) get the commands' one line as well.
        parser.__class__ = cli.parser_class(parser.called_from_command_line)
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        cli.add_commands(parser, parser.called_from_command_line, django_admin=True)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            cli.run(options, self.stdout)
            self.stdout.flush()
        except BrokenPipeError:
            # The reader stopped reading (``show UID | head -1``); nothing more
            # goes to the closed pipe, not even at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except cli.OperatorError as exc:
            if options.get("traceback") and exc.__cause__ is not None:
                raise exc.__cause__ from None
            raise CommandError(str(exc), returncode=exc.status) from exc
