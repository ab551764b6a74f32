"""Run the Cinder hook as an unprivileged user (a child of the test).

``python -m tests.functional.unprivileged_hook LOOP BACKUPS LOCKS VOLUME``
does what cinder-volume does when it runs as the ``cinder`` user: the
hook's privsep daemon is started first (here by forking while still root,
where cinder-volume would use its root helper), then the process drops to
``nobody`` and runs :func:`cinder_backend.hook.resign_volume` on ``LOOP``.
It prints one JSON line: the uid it ran as, whether it could open the
device itself (it must not), and the hook's result.
"""

import json
import os
import sys
import types

from oslo_privsep import priv_context

from cinder_backend import hook
from cinder_backend import privileged

NOBODY = 65534
PORTAL = "192.0.2.10:3260"


class LocalDriver(object):
    """A backend whose one volume is ``loop`` (already attached by root)."""

    def __init__(self, loop):
        self.loop = loop

    def create_export(self, context, volume, connector):
        return None

    def remove_export(self, context, volume):
        pass

    def initialize_connection(self, volume, connector):
        return {"driver_volume_type": "local",
                "data": {"device_path": self.loop, "volume_id": volume["id"],
                         "target_portal": PORTAL,
                         "target_iqn": "iqn.2010-10.org.openstack:volume-"
                         + volume["id"], "target_lun": 0}}

    def terminate_connection(self, volume, connector, **kwargs):
        pass


def main(loop, backups, locks, volume_id):
    privileged.default.start(priv_context.Method.FORK)
    # Loaded while root: this checkout may not be readable by nobody (a
    # real cinder user reads its own install).
    connector = hook.get_connector("LOCAL", "sudo", False, 3)
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    try:
        open(loop, "rb").close()
        direct = "opened"
    except PermissionError:
        direct = "EACCES"
    conf = types.SimpleNamespace(sr_naming="auto", backup_dir=backups)
    result = hook.resign_volume(LocalDriver(loop), {"id": volume_id},
                                conf=conf, connector_properties={},
                                lock_path=locks, attach_timeout=5,
                                connector=connector)
    print(json.dumps({"uid": os.getuid(), "direct": direct,
                      "result": result}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
