"""``xenapi-resign simulator``: run embedded XAPI pools until interrupted."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulator", help="serve embedded XAPI pools over XML-RPC",
        description="Start N XML-RPC XAPI pools on 127.0.0.1 sharing one "
                    "SAN directory of LUN images; print their URLs and "
                    "serve until interrupted.")
    parser.add_argument("--san", required=True, metavar="DIR",
                        help="SAN directory (created if missing)")
    parser.add_argument("--pools", type=int, default=2,
                        help="number of pools (default: 2)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from nova_xenapi_resign.simulator import server
    server.run(args.san, args.pools)
    return 0
