"""``xenapi-resign simulator``: run embedded XAPI pools until interrupted."""

from __future__ import annotations

import argparse
import os


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
    try:
        server.run(args.san, args.pools)
    except OSError as exc:
        raise exception.InvalidInput(reason="--san %s: %s" % (
            args.san, exc.strerror or exc))
    return 0
