#!/usr/bin/env python3
"""Time the Cinder hook adds to a clone: attach + resign + detach.

    python benchmarks/bench_cinder_hook.py [--quick] [--repeat N]

Needs root (loop devices).  The backend is the functional tests' loop
driver (``tests/functional/cinder_fakes.py``) behind
``cinder_backend.driver.ResignVolumeDriver``, with real os-brick (LOCAL
connector; os-brick's and the hook's privileged calls in-process).  For
each case a source LUN holding an LVHD SR is formatted once; each
repetition makes a fresh SAN clone of it (``cp --sparse=always``, reported
for scale) and runs the hook on the clone, as the wrapper's
``create_cloned_volume`` does.

Columns: the backend copy, the hook in total, and its parts: os-brick
connector properties of this host, the resignature (``resign_device``,
backup and fsyncs included) and the rest (export, ``initialize_connection``
= ``losetup``, ``connect_volume``, LVHD detection, ``disconnect_volume``,
``terminate_connection``).  The hook is run as the wrapper runs it
(``hook.resign_volume`` on the backend driver), with the connector
properties gathered just before and timed apart.  Medians over the
repetitions.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from oslo_config import cfg  # noqa: E402

from benchmarks import lun  # noqa: E402
from cinder_backend import driver  # noqa: E402
from cinder_backend import hook  # noqa: E402
from cinder_backend import opts  # noqa: E402
from cinder_backend import privileged  # noqa: E402
from nova_xenapi_resign import conf as xenapi_conf  # noqa: E402
from tests.functional import cinder_fakes  # noqa: E402

SOURCE = "11111111-1111-4111-8111-111111111111"


def make_driver(workdir):
    from os_brick import privileged as brick_privileged
    for pctxt in (brick_privileged.default, privileged.default):
        pctxt.set_client_mode(False)
    xenapi_conf.register_opts(cfg.CONF)
    cfg.CONF([], project="bench")
    cfg.CONF.set_override("resignature_duplicate_srs", True,
                          group="xenapi_resign")
    cfg.CONF.set_override("backup_dir", os.path.join(workdir, "backups"),
                          group="xenapi_resign")
    conf = cfg.ConfigOpts()
    conf([])
    configuration = cinder_fakes.FakeConfiguration(conf)
    configuration.append_config_values(opts.resign_opts)
    configuration.append_config_values(cinder_fakes.fake_opts)
    configuration.set("resign_backend_driver",
                      "tests.functional.cinder_fakes.LoopBackendDriver")
    configuration.set("fake_san_dir", os.path.join(workdir, "san"))
    return driver.ResignVolumeDriver(configuration=configuration)


def sparse_copy(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    subprocess.run(["cp", "--sparse=always", src, dst], check=True)


def run_case(wrapper, workdir, n_vdis, size, repeat):
    backend = wrapper.backend
    src = {"id": SOURCE}
    path = backend.lun_path(src)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lun.make_lun(path, n_vdis, size)
    rows = {"copy": [], "total": [], "props": [], "resign": [], "rest": []}
    written = 0
    for _ in range(repeat):
        vol = {"id": str(uuid.uuid4())}
        start = time.perf_counter()
        sparse_copy(path, backend.lun_path(vol))
        rows["copy"].append(time.perf_counter() - start)
        start = time.perf_counter()
        props = hook.host_connector_properties("sudo", None)
        props_seconds = time.perf_counter() - start
        start = time.perf_counter()
        result = hook.resign_volume(
            backend, vol, conf=cfg.CONF.xenapi_resign,
            connector_properties=props, root_helper="sudo")
        hook_seconds = time.perf_counter() - start
        if not result or not result["changed"]:
            raise SystemExit("the hook did not resign the clone: %r"
                             % (result,))
        rows["total"].append(props_seconds + hook_seconds)
        rows["props"].append(props_seconds)
        rows["resign"].append(result["resign_seconds"])
        rows["rest"].append(hook_seconds - result["resign_seconds"])
        written = result["bytes_written"]
        os.unlink(backend.lun_path(vol))
    os.unlink(path)
    shutil.rmtree(os.path.join(workdir, "backups"), ignore_errors=True)
    return {k: statistics.median(v) for k, v in rows.items()}, written


def human(size):
    for unit, div in (("TiB", lun.TiB), ("GiB", lun.GiB), ("MiB", lun.MiB)):
        if size >= div:
            return "%.4g %s" % (size / div, unit)
    return "%d B" % size


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 and 200 VDIs, one repetition (CI)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="repetitions per case (default 1 quick, 5)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (loop devices)")
    repeat = args.repeat or (1 if args.quick else 5)
    cases = [(1, 64 * lun.MiB), (200, None)]
    if not args.quick:
        cases += [(1, 2 * lun.TiB), (1000, None)]
    workdir = tempfile.mkdtemp(prefix="bench-cinder-hook-")
    wrapper = None
    try:
        wrapper = make_driver(workdir)
        # Warm up: imports, privsep, the first losetup.
        run_case(wrapper, workdir, 1, 64 * lun.MiB, 1)
        header = ("| VDIs | LUN size | clone copy (s) | hook total (s) | "
                  "connector props (s) | resign (s) | attach+detect+detach"
                  " (s) | bytes written |")
        print(header)
        print("|" + "|".join("---" for _ in range(8)) + "|")
        for n_vdis, size in cases:
            size = size or lun.lun_size_for(n_vdis)
            t, written = run_case(wrapper, workdir, n_vdis, size, repeat)
            print("| %d | %s | %.3f | %.3f | %.3f | %.3f | %.3f | %d |" % (
                n_vdis, human(size), t["copy"], t["total"], t["props"],
                t["resign"], t["rest"], written))
        print("\nmedian of %d run(s) per case" % repeat)
    finally:
        if wrapper is not None:
            wrapper.backend.detach_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
