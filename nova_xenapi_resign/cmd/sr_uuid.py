"""``xenapi-resign sr-uuid``: the SR UUID Nova gives (or gave) a volume."""

from __future__ import annotations

import argparse
import json
import sys

from nova_xenapi_resign import exception
from nova_xenapi_resign import sr_naming


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sr-uuid",
        help="print the SR UUIDs Nova derives for a volume",
        description="Print the SR UUID a new attachment gets under --style, "
                    "and every name an existing SR of the volume may have "
                    "(the order live migration looks them up in).")
    parser.add_argument("--portal", help="iSCSI target portal, host:port")
    parser.add_argument("--iqn", help="iSCSI target IQN")
    parser.add_argument("--volume-id", help="Cinder volume id")
    parser.add_argument("--connection-info", metavar="JSON",
                        help="Cinder connection info (the whole dict or its "
                             "'data'), as JSON")
    parser.add_argument("--style", choices=sr_naming.STYLES,
                        default=sr_naming.STYLE_AUTO,
                        help="naming style for a new SR (default: auto)")
    parser.add_argument("--default-host",
                        help="[xenserver] target_host, used when the portal "
                             "gives no host")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON object")
    parser.set_defaults(handler=run)


def connection_data_from_args(args: argparse.Namespace) -> dict:
    """Build connection data from --connection-info and the single flags."""
    data: dict = {}
    if args.connection_info:
        try:
            info = json.loads(args.connection_info)
        except ValueError as exc:
            raise exception.UsageError(
                reason="--connection-info is not JSON: %s" % exc)
        if isinstance(info, dict) and "data" in info:
            info = info["data"]
        if not isinstance(info, dict):
            raise exception.UsageError(
                reason="--connection-info must be a JSON object (the "
                "connection info or its 'data'), found %s"
                % type(info).__name__)
        data.update(info)
    for key, value in (("target_portal", args.portal),
                       ("target_iqn", args.iqn),
                       ("volume_id", args.volume_id)):
        if value is not None:
            data[key] = value
    return data


def run(args: argparse.Namespace) -> int:
    data = connection_data_from_args(args)
    candidates = sr_naming.sr_uuid_candidates(
        data, args.style, default_host=args.default_host)
    try:
        preferred = sr_naming.preferred_sr_uuid(
            data, args.style, default_host=args.default_host)
    except exception.InvalidConnectionData:
        # Only a legacy name can be derived (no target given): that is what
        # a new SR would get in any style that could name it at all.
        preferred = candidates[0]
    result = {
        "style": args.style,
        "sr_uuid": preferred,
        "classification": sr_naming.classify(preferred),
        "candidates": [{"sr_uuid": c, "classification": sr_naming.classify(c)}
                       for c in candidates],
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        print("new SR (%s): %s" % (args.style, preferred))
        for c in result["candidates"]:
            print("lookup: %-45s %s" % (c["sr_uuid"], c["classification"]))
    return 0
