"""``xenapi-resign plan`` and ``resign``: give a cloned LVHD LUN a new id."""

from __future__ import annotations

import argparse
import json
import sys

from nova_xenapi_resign.cmd import inspect as inspect_cmd
from nova_xenapi_resign import exception
from nova_xenapi_resign import sr_naming


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("device", help="the clone: block device or image")
    target = parser.add_argument_group(
        "target", "the new SR uuid: --sr-uuid, or what Nova derives it from")
    target.add_argument("--sr-uuid", help="the new SR uuid")
    target.add_argument("--portal", help="iSCSI portal of the new volume")
    target.add_argument("--iqn", help="iSCSI target IQN of the new volume")
    target.add_argument("--volume-id", help="Cinder id of the new volume")
    target.add_argument("--style", choices=sr_naming.STYLES,
                        help="SR naming style for --portal/--iqn "
                             "(default: auto)")
    parser.add_argument("--journals", choices=("refuse", "rename"),
                        default="refuse",
                        help="what to do with journal/jvhd/cbtlog LVs "
                             "(default: refuse)")
    parser.add_argument("--backup-dir",
                        default=inspect_cmd.default_backup_dir(),
                        help="where the pre-write backup goes "
                             "(default: %(default)s)")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON object")


def register(subparsers: argparse._SubParsersAction) -> None:
    plan = subparsers.add_parser(
        "plan", help="show every change a resignature would make",
        description="Print old -> new for every identifier a resignature "
                    "would change. Reads only.")
    _add_common(plan)
    plan.set_defaults(handler=run_plan)
    resign = subparsers.add_parser(
        "resign", help="resignature a cloned LVHD LUN",
        description="Give the LVHD SR on a cloned LUN a new identity: VG "
                    "name and ids, PV id, LV ids and names, VDI uuids, MGT "
                    "and VHD parent links. Backs up every range it writes; "
                    "crash-safe and idempotent.")
    _add_common(resign)
    resign.add_argument("--dry-run", action="store_true",
                        help="plan and check, write nothing")
    resign.add_argument("--yes", action="store_true",
                        help="do not ask for confirmation")
    resign.set_defaults(handler=run_resign)


def target_from_args(args: argparse.Namespace) -> str:
    """The target SR uuid: explicit, or derived the way Nova derives it.

    Inputs that would be ignored are refused (exit 2): ``--style`` with
    ``--sr-uuid``, or without the ``--portal`` and ``--iqn`` it names.
    The result is checked by :func:`resign.check_target`, which refuses
    a legacy ``FA15E-D15C-`` name or anything but a lowercase uuid.
    """
    from nova_xenapi_resign import resign
    derived = {k: v for k, v in (("target_portal", args.portal),
                                 ("target_iqn", args.iqn),
                                 ("volume_id", args.volume_id)) if v}
    if args.sr_uuid:
        if derived or args.style:
            raise exception.UsageError(
                reason="--sr-uuid excludes --portal, --iqn, --volume-id and "
                "--style")
        target = args.sr_uuid
    elif not derived:
        raise exception.UsageError(
            reason="give --sr-uuid, or --portal and --iqn (with --style)")
    elif args.style == sr_naming.STYLE_LEGACY:
        target = sr_naming.legacy_sr_uuid(derived.get("volume_id"))
    elif "target_portal" not in derived or "target_iqn" not in derived:
        if args.style:
            raise exception.UsageError(
                reason="--style %s needs both --portal and --iqn"
                % args.style)
        target = sr_naming.legacy_sr_uuid(derived.get("volume_id"))
    else:
        target = sr_naming.preferred_sr_uuid(
            derived, args.style or sr_naming.STYLE_AUTO)
    resign.check_target(target)
    return target


def plan_to_dict(p) -> dict:
    return {"device": p.device, "source_sr_uuid": p.source_sr_uuid,
            "target_sr_uuid": p.target_sr_uuid,
            "changes": [{"kind": c.kind, "subject": c.subject, "old": c.old,
                         "new": c.new} for c in p.changes],
            "writes": len(p.writes), "bytes_to_write": p.bytes_to_write}


def _print_plan(p) -> None:
    print("%s: %s -> %s" % (p.device, p.source_sr_uuid, p.target_sr_uuid))
    print("%-12s %-42s %s" % ("change", "subject", "old -> new"))
    for c in p.changes:
        print("%-12s %-42s %s\n%-12s %-42s -> %s" % (
            c.kind, c.subject, c.old, "", "", c.new))
    print("%d writes, %d bytes" % (len(p.writes), p.bytes_to_write))


def _options(args):
    from nova_xenapi_resign import resign
    return resign.Options(journals=args.journals)


def run_plan(args: argparse.Namespace) -> int:
    from nova_xenapi_resign import resign
    result = resign.resign_device(args.device, target_from_args(args),
                                  backup_dir=args.backup_dir, dry_run=True,
                                  options=_options(args))
    if result.plan is None:
        print(result.message)
        return 0
    if args.json:
        json.dump(plan_to_dict(result.plan), sys.stdout, indent=2,
                  sort_keys=True)
        print()
    else:
        _print_plan(result.plan)
    return 0


def _confirm(args, p) -> None:
    """Ask before writing, after showing what would change."""
    if not sys.stdin.isatty():
        raise exception.UsageError(
            reason="refusing to write without --yes when not interactive")
    _print_plan(p)
    try:
        answer = input("Resignature %s to SR %s? [y/N] " % (
            args.device, p.target_sr_uuid))
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise exception.UnsafeOperation(device=args.device,
                                        reason="not confirmed")


def _print_result(args, target, result) -> None:
    if args.json:
        out = {"device": result.device, "target_sr_uuid": target,
               "changed": result.changed, "dry_run": result.dry_run,
               "state": result.state, "backup": result.backup_path,
               "bytes_read": result.bytes_read,
               "bytes_written": result.bytes_written,
               "writes": result.writes,
               "seconds": round(result.seconds, 6),
               "plan": plan_to_dict(result.plan) if result.plan else None,
               "message": result.message}
        json.dump(out, sys.stdout, indent=2, sort_keys=True)
        print()
        return
    if result.plan is not None:
        _print_plan(result.plan)
    print(result.message)
    if result.backup_path:
        print("backup: %s" % result.backup_path)


def run_resign(args: argparse.Namespace) -> int:
    """Resign; interactively, show the plan first and ask only if needed."""
    from nova_xenapi_resign import resign
    target = target_from_args(args)

    def run(dry_run):
        return resign.resign_device(args.device, target,
                                    backup_dir=args.backup_dir,
                                    dry_run=dry_run, options=_options(args))
    if not (args.yes or args.dry_run):
        preview = run(True)
        if preview.plan is None:
            _print_result(args, target, preview)
            return 0
        _confirm(args, preview.plan)
    _print_result(args, target, run(args.dry_run))
    return 0
