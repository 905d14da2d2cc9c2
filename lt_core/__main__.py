"""Command line: ``python -m lt_core {train,info,transfer,interpolate,plane} ...``.

Every subcommand prints progress lines and exits non-zero with one clear message on bad input.
"""

from __future__ import annotations

import argparse
import sys

from .errors import LTError
from . import cli_landscape, cli_train, cli_transfer

COMMAND_MODULES = [cli_train, cli_transfer, cli_landscape]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lt_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    handlers = {}
    for module in COMMAND_MODULES:
        handlers.update(module.register(sub))
    args = parser.parse_args(argv)
    try:
        return handlers[args.command](args) or 0
    except LTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
