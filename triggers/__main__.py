"""Command line: ``python -m triggers <command>``.

Commands:

``demo``
    Run the questionnaire session of :mod:`triggers.demo` and print what
    happens (``python -m triggers demo --help`` for its options).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m triggers")
    commands = parser.add_subparsers(dest="command", metavar="command", required=True)

    from . import demo

    demo_parser = commands.add_parser(
        "demo",
        help="run a demonstration questionnaire session",
        description=demo.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_arguments(demo_parser)
    demo_parser.set_defaults(handler=demo.run)

    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
