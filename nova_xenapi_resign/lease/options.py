"""Options of the on-LUN lease, group ``[xenapi_resign]``.

Kept beside the lease code; ``conf.py`` adds them to the group's option
list, so ``conf.register_opts`` and ``conf.list_opts`` cover them.
"""

from __future__ import annotations

from oslo_config import cfg

from nova_xenapi_resign.lease import protocol

GROUP_NAME = "xenapi_resign"

lease_opts = [
    cfg.FloatOpt(
        "lease_duration",
        default=120.0,
        min=10.0,
        help="""
Seconds an LVHD volume SR's lease stays valid without a renewal.

The owning host renews every third of this. Another pool may take a lease
only after watching it unchanged for this long plus ``lease_io_timeout``
by its own monotonic clock, so this is also how long a rollback waits when a
migration's destination died. Each renewal reads the two 4 KiB lease slots
and writes one (fsynced).

Possible values:

* Seconds, at least 10 (default 120)

Related options:

* ``lease_io_timeout``
"""),
    cfg.FloatOpt(
        "lease_io_timeout",
        default=10.0,
        min=0.1,
        help="""
Seconds one lease sector write may take to reach the LUN.

A claim waits three times this for a racing claim to land before it
believes it won. Must be under a quarter of ``lease_duration``.

Possible values:

* Seconds, at least 0.1 (default 10)

Related options:

* ``lease_duration``
"""),
    cfg.IntOpt(
        "max_clock_skew",
        default=5,
        min=0,
        help="""
Largest difference, in seconds, allowed between the two pools' host clocks
before a cross-pool migration of an LVHD volume (0 disables the check).

The lease itself never compares clocks; this guard protects what does
(tapdisk and VM timeouts, logs an operator correlates).

Possible values:

* ``0``: no check
* A whole number of seconds (default 5)

Related options:

* ``lease_duration``
* ``ignore_clock_skew``
"""),
    cfg.BoolOpt(
        "ignore_clock_skew",
        default=False,
        help="""
Let cross-pool migrations of LVHD volumes go ahead even when the pools'
clocks differ by more than ``max_clock_skew``.

An operator's explicit override, for a migration that must happen before
NTP is fixed: each such migration logs a warning naming both hosts and the
skew. The lease itself stays safe (it never compares clocks).

Possible values:

* ``False``: refuse (default)
* ``True``: warn and migrate

Related options:

* ``max_clock_skew``
"""),
]


def timing(conf: cfg.ConfigOpts = cfg.CONF) -> protocol.Timing:
    """The :class:`protocol.Timing` configured in ``conf``."""
    group = conf[GROUP_NAME]
    return protocol.Timing(duration=group.lease_duration,
                           io_timeout=group.lease_io_timeout)
