"""``xenapi-resign simulator``: run embedded XAPI pools until interrupted."""

from __future__ import annotations

import argparse
import os

#: Environment variable holding the login password (keeps it out of ps).
PASSWORD_ENV = "XENAPI_RESIGN_SIM_PASSWORD"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulator", help="serve embedded XAPI pools over XML-RPC",
        description="Start N XML-RPC XAPI pools on 127.0.0.1 sharing one "
                    "SAN directory of LUN images; print their URLs and "
                    "serve until interrupted.")
    parser.add_argument("--san", required=True, metavar="DIR",
                        help="SAN directory (created if missing)")
    parser.add_argument("--pools", type=_pools, default=2,
                        help="number of pools, 1 to %d (default: 2)"
                        % MAX_POOLS)
    parser.add_argument("--password", metavar="PASSWORD",
                        default=os.environ.get(PASSWORD_ENV),
                        help="require this password for user root at "
                             "login, as a real host does (default: $%s; "
                             "unset: any password is accepted)"
                             % PASSWORD_ENV)
    parser.set_defaults(handler=run)


#: Each pool is one XML-RPC server on its own port and thread.
MAX_POOLS = 64


def _pools(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_POOLS:
        raise argparse.ArgumentTypeError(
            "must be a whole number from 1 to %d, got %r" % (MAX_POOLS, text))
    return n


def run(args: argparse.Namespace) -> int:
    from nova_xenapi_resign import exception
    if os.path.exists(args.san) and not os.path.isdir(args.san):
        raise exception.UsageError(reason="--san %s exists and is not a "
                                   "directory" % args.san)
    from nova_xenapi_resign.simulator import server
    credentials = None
    if args.password is not None:
        credentials = ("root", args.password)
    try:
        server.run(args.san, args.pools, credentials=credentials)
    except OSError as exc:
        raise exception.InvalidInput(reason="--san %s: %s" % (
            args.san, exc.strerror or exc))
    return 0
