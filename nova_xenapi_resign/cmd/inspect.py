"""``xenapi-resign inspect``: what an LVHD LUN holds and its resign state."""

from __future__ import annotations

import argparse
import json
import sys

from nova_xenapi_resign import conf


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect", help="show the SR, LVs, VDIs and state of an LVHD LUN",
        description="Read an LVHD LUN (block device or image) without "
                    "writing and print its SR uuid, VG, PV, LVs, VDIs, its "
                    "resign state (original, resigning, resigned) and every "
                    "inconsistency found.")
    parser.add_argument("device", help="block device or image file")
    parser.add_argument("--backup-dir", default=default_backup_dir(),
                        help="where interrupted resignatures left their "
                             "backups (default: %(default)s)")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON object")
    parser.set_defaults(handler=run)


def default_backup_dir() -> str:
    [(_, opts)] = conf.list_opts()
    return next(o.default for o in opts if o.name == "backup_dir")


def inspection_to_dict(insp) -> dict:
    sr = insp.sr or insp.original
    return {
        "device": insp.device,
        "state": insp.state,
        "backup": insp.backup.path if insp.backup else None,
        "sr_uuid": sr.sr_uuid,
        "vg_name": sr.vg_name,
        "vg_id": sr.vg.id,
        "vg_seqno": sr.vg.seqno,
        "pv_id": sr.pv_id,
        "lvs": [{"name": lv.name, "id": lv.id, "kind": lv.kind,
                 "size": lv.size,
                 "ranges": [list(r) for r in lv.extents]}
                for lv in sr.lvs],
        "vdis": [{"uuid": v.uuid, "type": v.vdi_type,
                  "name_label": v.name_label, "parent": v.parent_uuid,
                  "is_a_snapshot": v.is_a_snapshot,
                  "snapshot_of": v.snapshot_of, "hidden": v.hidden,
                  "read_only": v.read_only,
                  "virtual_size": v.virtual_size} for v in sr.vdis],
        "problems": [{"code": p.code, "subject": p.subject,
                      "detail": p.detail} for p in sr.problems],
    }


def _print_human(d: dict) -> None:
    print("device:  %s" % d["device"])
    print("state:   %s" % d["state"])
    if d["backup"]:
        print("backup:  %s" % d["backup"])
    print("SR uuid: %s" % d["sr_uuid"])
    print("VG:      %s (id %s, seqno %d)" % (d["vg_name"], d["vg_id"],
                                             d["vg_seqno"]))
    print("PV id:   %s" % d["pv_id"])
    print("\n%-42s %-38s %-7s %12s  %s"
          % ("LV", "id", "kind", "bytes", "PV byte ranges"))
    for lv in d["lvs"]:
        print("%-42s %-38s %-7s %12d  %s" % (
            lv["name"], lv["id"], lv["kind"], lv["size"],
            ", ".join("%d+%d" % tuple(r) for r in lv["ranges"])))
    print("\n%-36s %-4s %-36s %-4s %-6s %-3s %s" % (
        "VDI", "type", "parent", "snap", "hidden", "ro", "label"))
    for v in d["vdis"]:
        print("%-36s %-4s %-36s %-4s %-6s %-3s %s" % (
            v["uuid"], v["type"], v["parent"] or "-",
            "yes" if v["is_a_snapshot"] else "-",
            "yes" if v["hidden"] else "-", "yes" if v["read_only"] else "-",
            v["name_label"]))
    print("\nproblems: %s" % ("none" if not d["problems"] else ""))
    for p in d["problems"]:
        print("  %(code)s: %(subject)s: %(detail)s" % p)


def run(args: argparse.Namespace) -> int:
    from nova_xenapi_resign.lvhd import device
    from nova_xenapi_resign import resign
    with device.open_device(args.device) as dev:
        insp = resign.inspect(dev, args.backup_dir)
    d = inspection_to_dict(insp)
    if args.json:
        json.dump(d, sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        _print_human(d)
    return 0
