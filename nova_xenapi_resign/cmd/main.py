"""``xenapi-resign``: the command line of nova-xenapi-resign.

Each subcommand lives in its own module under ``nova_xenapi_resign.cmd`` and
exposes ``register(subparsers)``; modules import their heavy dependencies
inside the handler, so ``xenapi-resign --help`` and the resign path start
fast.

Exit codes: 0 done (or nothing to do), 1 error, 2 usage (bad or missing
arguments), 3 refused as unsafe (nothing was written), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from nova_xenapi_resign import exception

# Subcommand modules, in the order ``--help`` lists them.
_SUBCOMMANDS = ("demo", "sr_uuid", "inspect", "resign", "restore",
                "simulator")

EPILOG = """exit codes: 0 done or nothing to do, 1 error, 2 usage (bad or
missing arguments), 3 refused as unsafe (nothing was written), 130
interrupted"""
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xenapi-resign",
        description="SR naming, live-migration safety and LVHD SR "
                    "resignature for XenServer/XCP-ng clouds.",
        epilog=EPILOG)
    parser.add_argument("--debug", action="store_true",
                        help="log debug messages to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in _SUBCOMMANDS:
        module = importlib.import_module("nova_xenapi_resign.cmd." + name)
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.handler(args) or 0
    except exception.ResignException as exc:
        print("xenapi-resign: %s" % exc, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("xenapi-resign: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output piped into head(1) or similar: not an error of ours.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
