"""One real Cinder per test process: API, scheduler and volume services.

:func:`cloud` starts, once per process, what a Cinder deployment runs, in
one eventlet process: a ``cinder.conf`` in a temporary directory, a sqlite
database made by ``cinder-manage db sync``, oslo.messaging's ``fake://``
transport, the real ``cinder.service.Service`` objects for the scheduler
and two volume backends (``loop``: :class:`~cinder_tests.local_driver.
LocalFileDriver`; ``native``: :class:`~cinder_tests.local_driver.
NativeGroupDriver`), each wrapped by
:class:`cinder_backend.driver.ResignVolumeDriver`, and the real
``cinder.volume.api.API`` / ``cinder.group.api.API`` the REST API calls.
``[profiler] enabled = True`` as in a traced deployment.  The services are
stopped and every loop device detached when the process exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import sys
import tempfile

import eventlet

BACKENDS = {"loop": "cinder_tests.local_driver.LocalFileDriver",
            "native": "cinder_tests.local_driver.NativeGroupDriver"}
HOST = "cinder-test"
USER, PROJECT = "user-1", "project-1"

_CLOUD = None


def _write_conf(root: str) -> str:
    lines = [
        "[DEFAULT]",
        "transport_url = fake:/",
        "state_path = %s" % root,
        "host = %s" % HOST,
        "my_ip = 127.0.0.1",
        "auth_strategy = noauth",
        "enabled_backends = %s" % ",".join(BACKENDS),
        "scheduler_max_attempts = 3",
        "rpc_response_timeout = 120",
        # The scheduler waits one periodic interval for the backends'
        # capabilities before it schedules anything (60 s by default).
        "periodic_interval = 2",
        # Heartbeats are green threads; a test's blocking lvm2 commands on
        # a shared CPU must not make the scheduler think a service is down.
        "service_down_time = 3600",
        # One project runs every test of a process; group volumes stay
        # until the process ends (Cinder's default quota is 10 volumes).
        "quota_volumes = -1",
        "quota_snapshots = -1",
        "quota_gigabytes = -1",
        "quota_groups = -1",
        "[database]",
        "connection = sqlite:///%s/cinder.sqlite" % root,
        "[oslo_concurrency]",
        "lock_path = %s/locks" % root,
        "[coordination]",
        "backend_url = file://%s/coordination" % root,
        "[profiler]",
        "enabled = True",
        "[xenapi_resign]",
        "resignature_duplicate_srs = True",
        "backup_dir = %s/backups" % root,
    ]
    for name, backend in BACKENDS.items():
        lines += [
            "[%s]" % name,
            "volume_driver = cinder_backend.driver.ResignVolumeDriver",
            "resign_backend_driver = %s" % backend,
            "volume_backend_name = %s" % name,
            "local_volume_dir = %s/luns-%s" % (root, name),
            "resign_attach_timeout = 30",
        ]
    path = os.path.join(root, "cinder.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def quiet(root: str) -> None:
    """Services log to ``<root>/cinder.log``, as cinder-volume logs to a file.

    Passing tests stay quiet: Cinder's and os-brick's warnings about this
    host (no iSCSI initiator name, no NVMe) and oslo.messaging's
    deprecation of Cinder 16's RPC client calls are not the tests' output.
    """
    handler = logging.FileHandler(os.path.join(root, "cinder.log"))
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    logging.captureWarnings(True)


def in_process_privsep() -> None:
    """Run the privsep entrypoints in this (root) process.

    A deployment starts the daemons through ``cinder-rootwrap``; the tests
    run as root, so os-brick's, Cinder's and the hook's privileged calls
    run in-process (what os-brick's own tests do).
    """
    from os_brick import privileged as brick_privileged

    from cinder import privsep as cinder_privsep
    from cinder_backend import privileged
    for pctxt in (brick_privileged.default, privileged.default,
                  cinder_privsep.sys_admin_pctxt):
        pctxt.set_client_mode(False)


class Cloud(object):
    """The running Cinder: services, APIs, contexts."""

    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="cinder-real-")
        quiet(self.root)
        self.conf_path = _write_conf(self.root)
        manage = os.path.join(os.path.dirname(sys.executable),
                              "cinder-manage")
        subprocess.run([manage, "--config-file", self.conf_path, "db",
                        "sync"], check=True, capture_output=True)

        from cinder import objects
        objects.register_all()
        from cinder.common import config  # noqa: F401  (registers opts)
        from cinder import coordination
        from cinder import rpc
        from cinder import service
        from cinder import version
        from oslo_config import cfg

        self.conf = cfg.CONF
        self.conf(["--config-file", self.conf_path], project="cinder",
                  version=version.version_string())
        rpc.init(self.conf)
        in_process_privsep()
        coordination.COORDINATOR.start()
        self.services = [service.Service.create(
            binary="cinder-scheduler")]
        self.volumes = {}
        for name in BACKENDS:
            svc = service.Service.create(
                host="%s@%s" % (HOST, name), service_name=name,
                binary="cinder-volume", coordination=True)
            self.services.append(svc)
            self.volumes[name] = svc
        # Volume services first: the scheduler's start asks them for their
        # capabilities and waits (scheduler_driver_init_wait_time) until
        # one answers.
        for svc in self.services[1:] + self.services[:1]:
            svc.start()
        self.wait_for(lambda: self._scheduler_sees_backends(), True,
                      "the scheduler to see the volume backends")

        from cinder import context
        from cinder.group import api as group_api
        from cinder.volume import api as volume_api
        self.volume_api = volume_api.API()
        self.group_api = group_api.API()
        # The roles Keystone puts in a token (it expands the implied
        # ones; Cinder 2023.2+'s policies ask for "reader").
        self.admin = context.RequestContext(
            USER, PROJECT, is_admin=True, roles=["admin", "member", "reader"])
        self.user = context.RequestContext(
            USER, PROJECT, is_admin=False, roles=["member", "reader"])
        # Nova: the user's token plus its service token (Cinder 2023.2+
        # lets only a service delete an attachment of a server).
        self.nova = context.RequestContext(
            USER, PROJECT, is_admin=False, roles=["member", "reader"],
            service_roles=["service"])

    def _scheduler_sees_backends(self) -> bool:
        from cinder import context
        manager = self.services[0].manager
        states = manager.driver.host_manager.get_all_backend_states(
            context.get_admin_context())
        return len(list(states)) >= len(BACKENDS)

    def manager(self, backend: str = "loop"):
        return self.volumes[backend].manager

    def wrapper(self, backend: str = "loop"):
        """A backend's ResignVolumeDriver (under the profiler's traces)."""
        return self.manager(backend).driver

    @staticmethod
    def wait_for(fetch, done, what: str, polls: int = 6000):
        """Yield to the services until ``done(fetch())`` (or ``== done``).

        A cap against a hang, not a timing assertion.
        """
        for _ in range(polls):
            value = fetch()
            if (done(value) if callable(done) else value == done):
                return value
            eventlet.sleep(0.02)
        raise AssertionError("gave up waiting for %s" % what)

    def stop(self) -> None:
        for svc in reversed(self.services):
            try:
                svc.stop()
            except Exception:
                pass
        for svc in self.volumes.values():
            svc.manager.driver.backend.detach_all()
        shutil.rmtree(self.root, ignore_errors=True)


def cloud() -> Cloud:
    """The process's Cinder, started on first use."""
    global _CLOUD
    if _CLOUD is None:
        _CLOUD = Cloud()
        atexit.register(_CLOUD.stop)
    return _CLOUD
