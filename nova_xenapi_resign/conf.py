"""Options of nova-xenapi-resign, group ``[xenapi_resign]``.

The same group is read by the Nova driver adapter (naming and live-migration
checks) and by the Cinder hook (resignature on clone), so both sides of a
deployment agree on SR names by sharing one option.
"""

from __future__ import annotations

from oslo_config import cfg

from nova_xenapi_resign.lease import options as lease_options

GROUP_NAME = "xenapi_resign"

xenapi_resign_group = cfg.OptGroup(
    GROUP_NAME,
    title="XenAPI SR naming and resignature options",
    help="""
Options for nova-xenapi-resign: how Nova names the XenServer SR of a Cinder
volume, how live migration keeps those names, and how Cinder resignatures
SAN clones of LUNs that hold an LVHD SR.
""")

xenapi_resign_opts = [
    cfg.StrOpt(
        "sr_naming",
        default="auto",
        choices=[
            ("auto", "Reuse an SR that already exists under the legacy "
                     "name for this volume; otherwise use the uuid5 name."),
            ("uuid5", "Always name new SRs uuid5(namespace, "
                      "'<host>/<port>/<iqn>'), as Nova Mitaka to Ussuri."),
            ("legacy", "Always name new SRs 'FA15E-D15C-<volume id>', as "
                       "Nova up to Liberty."),
        ],
        help="""
How the SR of a newly attached Cinder volume is named.

Nova's XenAPI driver computes the SR UUID itself. Clouds upgraded across
Mitaka have SRs of both styles; an explicit ``sr_uuid`` in the connection
data (published by the Cinder hook, or injected by live migration) always
wins over this option. When looking for an existing SR, both names are tried
in the order this option implies.

Possible values:

* ``auto``: reuse an existing legacy-named SR, else uuid5 (default)
* ``uuid5``: the Mitaka-to-Ussuri name
* ``legacy``: the pre-Mitaka name

Related options:

* ``[xenserver] target_host`` and ``target_port``: the defaults used when
  ``target_portal`` gives no host or port.
"""),
    cfg.BoolOpt(
        "resignature_duplicate_srs",
        default=False,
        help="""
Resignature the LVHD SR on a volume created from a snapshot or a clone.

A SAN snapshot or clone of a LUN that holds a XenServer LVHD SR is a byte
copy: same SR UUID, same LVM ids, same VDI UUIDs. XAPI refuses to introduce
it beside the original. When this is enabled, the Cinder hook attaches the
new LUN, gives it a new identity derived from the SR UUID Nova will compute
for the new volume, and publishes that UUID in the connection data.

Possible values:

* ``False``: leave clones untouched (default; XAPI refuses duplicates)
* ``True``: resignature every cloned LVHD LUN after creation

Related options:

* ``sr_naming``: decides the new SR UUID.
* ``backup_dir``: where the pre-write backup is kept.
"""),
    cfg.BoolOpt(
        "require_relaxed_xsm_sr_check",
        default=True,
        help="""
Refuse a volume-backed live migration unless ``relax-xsm-sr-check`` is on.

Without the relaxed check XAPI treats every VDI of a cross-pool migration as
one to move: it refuses a raw ``iscsi`` volume SR
(``SR_DOES_NOT_SUPPORT_MIGRATION``) and would mirror an ``lvmoiscsi`` (LVHD)
volume SR, reading and writing the same LUN from both pools.
The check is made on the source before XAPI is asked to migrate anything.

Possible values:

* ``True``: refuse when the source pool does not relax the check (default)
* ``False``: allow it (only for pools whose storage is not shared)

Related options:

* ``sr_naming``
"""),
    cfg.StrOpt(
        "backup_dir",
        default="/var/lib/nova-xenapi-resign/backups",
        help="""
Directory for the backups written before a resignature changes a device.

Every byte range a resignature will overwrite is copied here (and synced)
before the first write, so ``xenapi-resign restore`` can put it back.

Possible values:

* An absolute directory path, created if missing.

Related options:

* ``resignature_duplicate_srs``
"""),
]

#: The on-LUN lease's options live beside its code; one group holds all.
xenapi_resign_opts += lease_options.lease_opts


def register_opts(conf: cfg.ConfigOpts = cfg.CONF) -> None:
    """Register the ``[xenapi_resign]`` group and options on ``conf``."""
    conf.register_group(xenapi_resign_group)
    conf.register_opts(xenapi_resign_opts, group=xenapi_resign_group)


def list_opts() -> list[tuple[cfg.OptGroup, list[cfg.Opt]]]:
    """oslo.config.opts entry point for sample config generation."""
    return [(xenapi_resign_group, xenapi_resign_opts)]
