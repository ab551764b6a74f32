"""``xenapi-resign demo``: the whole story on the embedded XAPI."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the end-to-end story on two embedded XAPI pools",
        description="Attach an LVHD SR, clone its LUN, watch XAPI refuse "
                    "the clone, resign it and attach it beside the "
                    "original; reproduce bug 1566622; attach a VDI-per-LUN "
                    "volume and its resigned clone beside it; live-migrate "
                    "the raw legacy and LVHD volumes safely. Every step "
                    "lists its XAPI calls. Leaves nothing behind; "
                    "exits non-zero if any step fails.")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object at the end")
    parser.set_defaults(handler=run)


def _print_step(step) -> None:
    print("[%s] %-28s %4d XAPI calls %7.3fs  %s" % (
        "ok" if step.ok else "FAIL", step.name, step.xapi_calls,
        step.seconds, step.summary), flush=True)
    if step.xapi_methods:
        print("     XAPI: %s" % ", ".join(
            "%s x%d" % item if item[1] > 1 else item[0]
            for item in step.xapi_methods.items()), flush=True)


def run(args: argparse.Namespace) -> int:
    from nova_xenapi_resign import demo
    steps, hazards = demo.run(
        (lambda step: None) if args.json else _print_step)
    ok = len(steps) == len(demo.STEPS) and all(s.ok for s in steps)
    if args.json:
        json.dump({"ok": ok, "hazards": hazards,
                   "steps": [{"name": s.name, "ok": s.ok,
                              "xapi_calls": s.xapi_calls,
                              "xapi_methods": s.xapi_methods,
                              "seconds": round(s.seconds, 4),
                              "summary": s.summary, "detail": s.detail}
                             for s in steps]},
                  sys.stdout, indent=2, sort_keys=True, default=str)
        print()
    else:
        print("demo %s: %d/%d steps ok, %d hazards" % (
            "passed" if ok else "FAILED", sum(s.ok for s in steps),
            len(demo.STEPS), len(hazards)))
    return 0 if ok else 1
