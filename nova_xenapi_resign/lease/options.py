"""Options of the on-LUN lease, group ``[xenapi_resign]``.

Kept here (not in ``conf.py``) so the lease can be merged on its own;
:func:`register_opts` and :func:`list_opts` follow ``conf.py``'s shape.
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
migration's destination died. Each renewal costs one 4.5 KiB read and one
512-byte write on the LUN.

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
"""),
]


def register_opts(conf: cfg.ConfigOpts = cfg.CONF) -> None:
    """Register the lease options in ``[xenapi_resign]`` on ``conf``."""
    conf.register_opts(lease_opts, group=GROUP_NAME)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """oslo.config.opts entry point for sample config generation."""
    return [(GROUP_NAME, lease_opts)]


def timing(conf: cfg.ConfigOpts = cfg.CONF) -> protocol.Timing:
    """The :class:`protocol.Timing` configured in ``conf``."""
    group = conf[GROUP_NAME]
    return protocol.Timing(duration=group.lease_duration,
                           io_timeout=group.lease_io_timeout)
