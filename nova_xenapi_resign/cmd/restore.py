"""``xenapi-resign restore``: undo a resignature from its backup."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "restore", help="put a device back from a resign backup",
        description="Write back every byte range a resignature backed up, "
                    "returning the device to its original identity.")
    parser.add_argument("device", help="block device or image file")
    parser.add_argument("--backup", required=True, metavar="FILE",
                        help="the .resign-backup file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from nova_xenapi_resign import resign
    written = resign.restore_device(args.device, args.backup)
    print("restored %s from %s (%d bytes written)"
          % (args.device, args.backup, written))
    return 0
