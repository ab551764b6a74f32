"""Unit tests for nova_xenapi_resign.lvhd.create (format a LUN as LVHD)."""

import dataclasses
import hashlib
import os

from nova_xenapi_resign import exception
from nova_xenapi_resign.lease import record
from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import device
from nova_xenapi_resign.lvhd import libdm_config
from nova_xenapi_resign.lvhd import lvm
from nova_xenapi_resign.lvhd import lvm_id
from nova_xenapi_resign.lvhd import naming
from nova_xenapi_resign.lvhd import sr
from nova_xenapi_resign.lvhd import srmetadata
from nova_xenapi_resign.lvhd import vg_metadata
from nova_xenapi_resign.lvhd import vhd
from tests import base
from tests import crash

MIB = 1024 * 1024
SR = "5f0c2d4e-8a1b-4c3d-9e2f-0a1b2c3d4e5f"
BASE = "aaaaaaaa-0000-4000-8000-000000000001"
LEAF = "aaaaaaaa-0000-4000-8000-000000000002"
SNAP = "aaaaaaaa-0000-4000-8000-000000000003"
RAW = "aaaaaaaa-0000-4000-8000-000000000004"
PLAIN = "aaaaaaaa-0000-4000-8000-000000000005"


def tree():
    return (
        create.VdiSpec(BASE, "vhd", 8 * MIB, name_label="base copy",
                       hidden=True, read_only=True, managed=False),
        create.VdiSpec(LEAF, "vhd", 8 * MIB, name_label="vm disk",
                       name_description="a <disk> & more", parent=BASE),
        create.VdiSpec(SNAP, "vhd", 8 * MIB, name_label="snap",
                       parent=BASE, is_a_snapshot=True, snapshot_of=LEAF,
                       snapshot_time="20240101T00:00:00Z"),
        create.VdiSpec(RAW, "raw", 6 * MIB, name_label="raw",
                       hidden=True, read_only=True),
        create.VdiSpec(PLAIN, "vhd", 16 * MIB, type="system"),
    )


def planned(plan):
    """Bytes the plan writes."""
    return sum(len(data) for _, data in plan.writes)


class FormatSrTest(base.TestCase):

    def image(self, name="lun.img", size=64 * MIB, fill=None):
        path = os.path.join(self.tmpdir, name)
        with open(path, "wb") as f:
            if fill is not None:
                f.write(fill * size)
            else:
                f.truncate(size)
        return path

    def format(self, path, vdis=tree(), **kwargs):
        with device.open_device(path, writable=True) as dev:
            model = create.format_sr(dev, SR, vdis, **kwargs)
            return model, dev.bytes_written, dev.writes

    def digest(self, path, limit=None):
        with open(path, "rb") as f:
            return hashlib.sha256(f.read(limit)).hexdigest()

    # --- the SR as inspect sees it ------------------------------------------

    def test_inspect_reports_everything(self):
        model, _, _ = self.format(self.image(), name_label="My SR",
                                  name_description="desc")
        self.assertEqual((), model.problems)
        self.assertEqual(SR, model.sr_uuid)
        self.assertEqual("VG_XenStorage-" + SR, model.vg_name)
        self.assertEqual([BASE, LEAF, SNAP, RAW, PLAIN],
                         [v.uuid for v in model.vdis])
        base_vdi, leaf, snap, raw, plain = model.vdis
        self.assertTrue(base_vdi.hidden)
        self.assertTrue(base_vdi.read_only)
        self.assertFalse(base_vdi.managed)
        self.assertIsNone(base_vdi.parent_uuid)
        self.assertEqual("base copy", base_vdi.name_label)
        for child in (leaf, snap):
            self.assertEqual(BASE, child.parent_uuid)
            self.assertEqual(SR, child.parent_sr_uuid)
            self.assertFalse(child.hidden)
            self.assertFalse(child.read_only)
            self.assertEqual(3, len(child.locator_paths))
            for path in child.locator_paths:
                self.assertEqual("./" + naming.lvhd_parent_name(SR, BASE),
                                 path)
        self.assertEqual("a <disk> & more", leaf.name_description)
        self.assertFalse(leaf.is_a_snapshot)
        self.assertTrue(snap.is_a_snapshot)
        self.assertEqual(LEAF, snap.snapshot_of)
        self.assertEqual("raw", raw.vdi_type)
        self.assertEqual("LV-" + RAW, raw.lv_name)
        self.assertTrue(raw.hidden)
        self.assertTrue(raw.read_only)
        self.assertEqual(8 * MIB, raw.virtual_size)   # rounded to extents
        self.assertEqual(16 * MIB, plain.virtual_size)
        self.assertEqual(8 * MIB, leaf.virtual_size)

    def test_mgt_records(self):
        model, _, _ = self.format(self.image(), name_label="My SR",
                                  name_description="desc")
        mgt = model.mgt
        self.assertEqual(srmetadata.SrInfo(SR, "thick", "My SR", "desc"),
                         mgt.sr_info)
        self.assertEqual(5, len(mgt.live_records))
        base_rec = mgt.record(BASE)
        self.assertEqual(("vhd", "1", "0", "0", "user"),
                         (base_rec["vdi_type"], base_rec["read_only"],
                          base_rec["managed"], base_rec["is_a_snapshot"],
                          base_rec["type"]))
        snap = mgt.record(SNAP)
        self.assertEqual(("1", LEAF, "20240101T00:00:00Z"),
                         (snap["is_a_snapshot"], snap["snapshot_of"],
                          snap["snapshot_time"]))
        self.assertEqual("aio", mgt.record(RAW)["vdi_type"])
        self.assertEqual("system", mgt.record(PLAIN)["type"])
        for rec in mgt.records:
            self.assertEqual(
                ["name_label", "name_description", "uuid", "is_a_snapshot",
                 "snapshot_of", "snapshot_time", "type", "vdi_type",
                 "read_only", "managed", "metadata_of_pool", "deleted"],
                [key for key, _ in rec.fields])

    def test_lvm_layout(self):
        path = self.image()
        model, _, _ = self.format(path)
        label = model.pv.label
        self.assertEqual(1, label.sector)
        self.assertEqual(64 * MIB, label.device_size)
        self.assertEqual((lvm.DiskLocn(11 * MIB, 0),), label.data_areas)
        self.assertEqual((lvm.DiskLocn(4096, 11 * MIB - 4096),),
                         label.metadata_areas)
        header = model.pv.mdas[0].header
        self.assertEqual(512, header.committed.offset)
        self.assertIsNone(header.precommitted)
        vg = model.vg
        self.assertEqual(1, vg.seqno)
        self.assertEqual(8192, vg.extent_size)
        self.assertEqual(("RESIZEABLE", "READ", "WRITE"), vg.status)
        pv = vg.pvs[0]
        self.assertEqual(("pv0", 131072, 22528, 13),
                         (pv.key, pv.dev_size, pv.pe_start, pv.pe_count))
        self.assertEqual(("ALLOCATABLE",), pv.status)
        self.assertEqual(create.DEFAULT_DEVICE_HINT, pv.device)
        self.assertEqual(["MGT", "VHD-" + BASE, "VHD-" + LEAF, "VHD-" + SNAP,
                          "LV-" + RAW, "VHD-" + PLAIN], list(vg.lv_names))
        # Extents one after another from 0; VHD LVs are one extent.
        starts = [(lv.segments[0].stripes[0][1], lv.extent_count)
                  for lv in vg.lvs]
        self.assertEqual([(0, 1), (1, 1), (2, 1), (3, 1), (4, 2), (6, 1)],
                         starts)
        self.assertEqual(("READ", "VISIBLE"), vg.lv("VHD-" + BASE).status)
        self.assertEqual(("READ", "WRITE", "VISIBLE"),
                         vg.lv("VHD-" + LEAF).status)
        self.assertEqual(("hidden",), vg.lv("LV-" + RAW).tags)
        self.assertEqual((), vg.lv("VHD-" + BASE).tags)
        lv = vg.lv("MGT")
        self.assertEqual((create.DEFAULT_CREATION_TIME, "xenapi-resign"),
                         (lv.creation_time, lv.creation_host))

    def test_ids_are_valid_unique_and_tied_to_the_sr(self):
        model, _, _ = self.format(self.image())
        vg = model.vg
        ids = [vg.id, vg.pvs[0].id] + [lv.id for lv in vg.lvs]
        for value in ids:
            self.assertTrue(lvm_id.is_lvm_id(value), value)
        self.assertEqual(len(ids), len(set(ids)))
        # The label and the text agree on the PV.
        self.assertEqual(lvm_id.format_lvm_id(model.pv_id), vg.pvs[0].id)
        # Another SR gets other ids for the same names; options that do not
        # change the identity (size, host, time) keep them.
        other, _, _ = self.format(self.image("other.img"), vdis=tree()[:1])
        again, _, _ = self.format(self.image("again.img", size=96 * MIB),
                                  creation_host="elsewhere",
                                  creation_time=1)
        self.assertEqual(ids, [again.vg.id, again.vg.pvs[0].id]
                         + [lv.id for lv in again.vg.lvs])
        with device.open_device(self.image("sr2.img"), writable=True) as dev:
            sr2 = create.format_sr(dev, LEAF, tree()[:1])
        self.assertTrue({sr2.vg.id, sr2.vg.pvs[0].id, sr2.vg.lv("MGT").id}
                        .isdisjoint(ids))
        self.assertEqual(other.vg.lv("MGT").id, vg.lv("MGT").id)
        # A change detector on purpose: an SR formatted by an earlier
        # release must keep the ids it was given (this value was produced
        # by the release that fixed the id scheme).
        self.assertEqual("YITiuk-1L3F-X04g-f1le-BAig-hgUJ-aJxzlL", vg.id)

    def test_text_is_raw_lvm_form(self):
        model, _, _ = self.format(self.image())
        text = model.pv.committed_text.decode()
        self.assertTrue(text.startswith("VG_XenStorage-%s {\nid = " % SR))
        self.assertIn('\ndevice = "/dev/sdb"\n\nstatus = ["ALLOCATABLE"]\n',
                      text)
        self.assertIn('\nstripes = [\n"pv0", 0\n]\n}\n}\n', text)
        self.assertTrue(text.endswith("# Wed Jan  1 00:00:00 2020\n\n"))
        self.assertNotIn("\t", text.split("\n}\n# Generated")[0])
        # vg_metadata writes it back byte for byte.
        vg = vg_metadata.parse_vg(text)
        self.assertEqual(text, vg_metadata.render_vg(vg, form="raw"))
        self.assertEqual(text,
                         libdm_config.serialize(libdm_config.parse(text)))

    def test_vhd_lvs(self):
        path = self.image()
        model, _, _ = self.format(path)
        with device.open_device(path) as dev:
            for spec in tree():
                if spec.vdi_type != "vhd":
                    continue
                lv = model.lv(spec.lv_name)
                image = create.vhd_contents(SR, spec)
                self.assertEqual(-(-len(image) // (4 * MIB)) * 4 * MIB,
                                 lv.size)
                self.assertEqual(image, sr.read_lv(dev, lv, 0, len(image)))
                footer = vhd.parse_footer(image[:512])
                self.assertEqual(create.footer_uuid(SR, spec.uuid),
                                 footer.uuid)
                self.assertEqual(spec.hidden, footer.is_hidden)
                self.assertEqual(spec.parent is not None,
                                 footer.is_differencing)
                # The trailing footer ends the VHD image.
                self.assertEqual(image[:512], image[-512:])
                if spec.parent:
                    header = vhd.parse_header(image[512:1536])
                    self.assertEqual(create.footer_uuid(SR, spec.parent),
                                     header.parent_uuid)
                    self.assertEqual(naming.lvhd_parent_name(SR, spec.parent),
                                     header.parent_name)

    def test_empty_sr(self):
        model, written, _ = self.format(self.image(), vdis=())
        self.assertEqual((), model.problems)
        self.assertEqual((), model.vdis)
        self.assertEqual(("MGT",), model.vg.lv_names)
        self.assertEqual(0, len(model.mgt.records))

    def test_deterministic(self):
        a, b = self.image("a.img"), self.image("b.img")
        self.format(a, name_label="x")
        self.format(b, name_label="x")
        self.assertEqual(self.digest(a), self.digest(b))
        c = self.image("c.img")
        self.format(c, name_label="x", creation_time=1)
        self.assertNotEqual(self.digest(a), self.digest(c))

    def test_overwrites_old_contents(self):
        path = self.image(size=32 * MIB, fill=b"\xab")
        model, _, _ = self.format(path, vdis=tree()[:3])
        self.assertEqual((), model.problems)
        with open(path, "rb") as f:
            head = f.read(4096)
        self.assertEqual(bytes(512), head[:512])
        self.assertEqual(bytes(4096 - 1024), head[1024:])

    def test_bytes_written(self):
        path = self.image()
        with device.open_device(path, writable=True) as dev:
            plan = create.plan_format(SR, tree(), device_size=dev.size)
            create.apply_plan(dev, plan)
            self.assertEqual(planned(plan), dev.bytes_written)
        images = sum(len(create.vhd_contents(SR, s)) for s in tree()
                     if s.vdi_type == "vhd")
        mgt = len(create.mgt_contents(SR, tree()))
        self.assertEqual(2048 + 5 * 1024, mgt)
        text = -(-(len(plan.text) + 1) // 512) * 512
        self.assertEqual(4096 + 512 + text + mgt + images,
                         planned(plan))
        self.assertLess(planned(plan), 64 * 1024)
        # Label sectors last, then the mda header before them.
        self.assertEqual(["contents", "mda header", "label"],
                         [step.what for step in plan.steps])
        self.assertEqual(((0, plan.writes[-1][1]),), plan.steps[-1].writes)
        self.assertEqual(4096, plan.steps[1].writes[0][0])
        for offset, data in plan.writes:
            self.assertEqual(0, offset % 512)
            self.assertEqual(0, len(data) % 512)

    def test_interrupted_format_is_not_an_sr_and_a_rerun_finishes(self):
        plan = create.plan_format(SR, tree(), device_size=64 * MIB)
        done = self.image("done.img")
        self.format(done)
        for k in range(1, len(plan.writes) + 1):
            path = self.image("crash%d.img" % k)
            with crash.CrashingDevice(path, True, k) as dev:
                self.assertRaises(crash.Crash, create.apply_plan, dev, plan)
            # Until the label lands there is no PV on the blank device.
            with device.open_device(path) as dev:
                self.assertRaises(exception.FormatError, lvm.read_pv, dev)
            model, _, _ = self.format(path)
            self.assertEqual((), model.problems)
            self.assertEqual(self.digest(done), self.digest(path))

    def test_apply_plan_fsyncs_after_each_step(self):
        plan = create.plan_format(SR, tree(), device_size=64 * MIB)
        events = []

        class Recording(device.Device):
            def write(self, offset, data):
                events.append(offset)
                super().write(offset, data)

            def fsync(self):
                events.append("fsync")
                super().fsync()

        with Recording(self.image(), writable=True) as dev:
            create.apply_plan(dev, plan)
        expected = []
        for step in plan.steps:
            expected += [offset for offset, _ in step.writes] + ["fsync"]
        self.assertEqual(expected, events)

    def test_creation_time_zero_omits_lv_times(self):
        model, _, _ = self.format(self.image(), creation_time=0,
                                  creation_host="h")
        text = model.pv.committed_text.decode()
        lv_part = text.split("logical_volumes {")[1]
        self.assertNotIn("creation_time", lv_part.split("\n}\n# ")[0])
        self.assertIn('\ncreation_host = "h"\n', text)
        self.assertIsNone(model.vg.lv("MGT").creation_time)

    def test_options(self):
        model, _, _ = self.format(
            self.image(size=32 * MIB), vdis=tree()[:2],
            metadata_size=MIB, extent_size=MIB, allocation="thin",
            device_hint="/dev/xyz")
        self.assertEqual((), model.problems)
        self.assertEqual(2048, model.vg.extent_size)
        self.assertEqual(2 * 2048, model.vg.pvs[0].pe_start)
        self.assertEqual("/dev/xyz", model.vg.pvs[0].device)
        self.assertEqual(4, model.vg.lv("MGT").extent_count)
        self.assertEqual("thin", model.mgt.sr_info.allocation)

    def test_legacy_sr_uuid(self):
        legacy = "FA15E-D15C-" + LEAF
        with device.open_device(self.image(), writable=True) as dev:
            model = create.format_sr(dev, legacy, tree()[:2])
        self.assertEqual(legacy, model.sr_uuid)
        self.assertEqual((), model.problems)

    def test_many_vdis(self):
        vdis = [create.VdiSpec("bbbbbbbb-0000-4000-8000-%012d" % i, "vhd",
                               2 * MIB) for i in range(300)]
        path = self.image(size=12 * MIB + 301 * 4 * MIB)
        model, _, _ = self.format(path, vdis=vdis)
        self.assertEqual((), model.problems)
        self.assertEqual(300, len(model.vdis))

    # --- refusals: typed error, nothing written -----------------------------

    def assert_refused(self, vdis=tree(), size=64 * MIB, sr_uuid=SR,
                       **kwargs):
        path = self.image(size=size)
        with open(path, "r+b") as f:   # sentinels where writes would go
            f.write(b"\x5a" * MIB)
            f.seek(min(size, 11 * MIB) - 512)
            f.write(b"\x5a" * min(MIB, size - f.tell()))
        before = self.digest(path, 16 * MIB)
        with device.open_device(path, writable=True) as dev:
            exc = self.assertRaises(exception.ResignException,
                                    create.format_sr, dev, sr_uuid, vdis,
                                    **kwargs)
            self.assertEqual(0, dev.writes)
        self.assertEqual(before, self.digest(path, 16 * MIB))
        return exc

    def spec(self, uuid, **kwargs):
        return create.VdiSpec(uuid, kwargs.pop("vdi_type", "vhd"),
                              kwargs.pop("virtual_size", 8 * MIB), **kwargs)

    def test_refuses_small_device(self):
        exc = self.assert_refused(size=20 * MIB)
        self.assertIsInstance(exc, exception.InvalidInput)
        self.assertIn("too small", str(exc))
        self.assert_refused(vdis=(), size=11 * MIB + 512)

    def test_refuses_missing_parent(self):
        exc = self.assert_refused(vdis=(self.spec(LEAF, parent=BASE),))
        self.assertIn("not in the VDI list", str(exc))

    def test_refuses_raw_parent(self):
        exc = self.assert_refused(vdis=(
            self.spec(BASE, vdi_type="raw"), self.spec(LEAF, parent=BASE)))
        self.assertIn("not a vhd VDI", str(exc))

    def test_refuses_raw_with_parent(self):
        exc = self.assert_refused(vdis=(
            self.spec(BASE), self.spec(LEAF, vdi_type="raw", parent=BASE)))
        self.assertIn("only vhd VDIs have a parent", str(exc))

    def test_refuses_parent_after_child(self):
        exc = self.assert_refused(vdis=(self.spec(LEAF, parent=BASE),
                                        self.spec(BASE)))
        self.assertIn("must be listed before", str(exc))

    def test_refuses_cycles(self):
        exc = self.assert_refused(vdis=(self.spec(LEAF, parent=BASE),
                                        self.spec(BASE, parent=LEAF)))
        self.assertIn("cycle", str(exc))
        exc = self.assert_refused(vdis=(self.spec(LEAF, parent=LEAF),))
        self.assertIn("cycle", str(exc))

    def test_refuses_repeated_uuid(self):
        exc = self.assert_refused(vdis=(self.spec(LEAF), self.spec(
            LEAF, vdi_type="raw")))
        self.assertIn("listed twice", str(exc))

    def test_refuses_bad_specs(self):
        for bad in (self.spec("not-a-uuid"), self.spec(LEAF.upper()),
                    self.spec(LEAF, vdi_type="qcow2"),
                    self.spec(LEAF, virtual_size=0),
                    self.spec(LEAF, virtual_size=1000),
                    self.spec(LEAF, virtual_size=True),
                    self.spec(LEAF, name_label="bad \x01 char"),
                    dataclasses.replace(self.spec(LEAF), snapshot_of="<x>"),
                    "not a spec"):
            self.assert_refused(vdis=(bad,))

    def test_refuses_bad_options(self):
        self.assert_refused(sr_uuid="bad/uuid")
        self.assert_refused(sr_uuid="")
        self.assert_refused(allocation="fat")
        self.assert_refused(extent_size=3 * MIB)
        self.assert_refused(extent_size=512)
        self.assert_refused(metadata_size=1000)
        self.assert_refused(creation_time=-1)

    def test_refuses_text_too_big_for_metadata_area(self):
        vdis = [self.spec("cccccccc-0000-4000-8000-%012d" % i,
                          vdi_type="raw", virtual_size=512)
                for i in range(2000)]
        # A 1 MiB area holds copies of at most ~509 KiB; this is ~650 KiB.
        exc = self.assert_refused(vdis=vdis, metadata_size=4096,
                                  extent_size=4096)
        self.assertIsInstance(exc, exception.LvmMetadataError)

    def test_apply_plan_checks_device_size(self):
        plan = create.plan_format(SR, (), device_size=64 * MIB)
        path = self.image(size=32 * MIB)
        with device.open_device(path, writable=True) as dev:
            self.assertRaises(exception.InvalidInput, create.apply_plan,
                              dev, plan)
            self.assertEqual(0, dev.writes)


class TestVolumeFormat(base.TestCase):
    """A LUN as one volume: the sizes README gives, worked out by hand."""

    GIB = 1024 * MIB

    def test_sm_metadata_overhead_of_the_largest_vhd(self):
        # sm vhdutil.calcOverheadEmpty(2093050 MiB): 3072 + 1046525 * 4 =
        # 4189172 -> 4189184 (512); + 1046525 // 8 = 4319999 -> 4321280.
        self.assertEqual(4321280,
                         create.vhd_metadata_overhead(create.SM_MAX_VHD_SIZE))

    def test_vdi_sizes(self):
        # 1 GiB: (1024 - 11) // 4 = 253 extents; MGT and the lease LV take
        # one each, 251 for the VDI = 1004 MiB; (1004 MiB - 4321280) //
        # (2 MiB + 4 KiB) = 498 blocks = 996 MiB.
        # 10 GiB: 2557 extents, 2555 * 4 MiB; 5097 blocks = 10194 MiB.
        for size, vdi in ((self.GIB, 996 * MIB), (10 * self.GIB,
                                                  10194 * MIB)):
            self.assertEqual(vdi, create.volume_vdi_size(size))

    def test_plan_volume(self):
        plan = create.plan_volume(SR, "vol-1", "my volume",
                                  device_size=self.GIB)
        self.assertEqual([("MGT", 0, 1), ("xenapi_resign_lease", 1, 1)],
                         [(lv.name, lv.start_extent, lv.extent_count)
                          for lv in plan.lvs[:2]])
        self.assertEqual((2, 251), (plan.lvs[2].start_extent,
                                    plan.lvs[2].extent_count))
        self.assertEqual(plan.geometry.pe_count, 253)
        self.assertIn(b"my volume", plan.lvs[0].contents)
        other = create.plan_volume(SR, "vol-2", "v", device_size=self.GIB)
        self.assertNotEqual(plan.lvs[2].name, other.lvs[2].name)
        self.assertEqual(plan.lvs[2].name, create.plan_volume(
            SR, "vol-1", "renamed", device_size=self.GIB).lvs[2].name)

    def test_plan_volume_writes_a_free_lease(self):
        plan = create.plan_volume(SR, "vol-1", "v", device_size=self.GIB)
        area = plan.lv("xenapi_resign_lease").contents
        # Both 4 KiB slots: a record sector, then zeros (lease.rst format).
        self.assertEqual(8192, len(area))
        self.assertEqual(b"XRSLEASE", area[:8])
        self.assertEqual(b"", area[512:].strip(b"\0"))
        snap = record.snapshot((area[:512], area[4096:4608]))
        self.assertEqual((SR, "free", 0, 0, None),
                         (snap.latest.sr_uuid, snap.latest.state_name,
                          snap.latest.generation, snap.latest.counter,
                          snap.latest.owner))
        # The operator time is the format's creation time: deterministic.
        self.assertEqual(create.DEFAULT_CREATION_TIME * 1000,
                         snap.latest.written_at_ms)
        data_start = plan.geometry.pe_start + plan.geometry.extent_size
        self.assertIn((data_start, area), plan.writes)

    def test_refusals(self):
        for sr_uuid in ("FA15E-D15C-vol-1", SR.upper(), ""):
            self.assertRaises(exception.InvalidInput, create.plan_volume,
                              sr_uuid, "vol-1", "v", device_size=self.GIB)
        self.assertRaises(exception.InvalidInput, create.plan_volume,
                          SR, "", "v", device_size=self.GIB)
        self.assertRaises(exception.InvalidInput, create.plan_volume,
                          SR, "vol-1", None, device_size=self.GIB)
        exc = self.assertRaises(exception.InvalidInput, create.plan_volume,
                                SR, "vol-1", "v", device_size=16 * MIB)
        self.assertIn("too small for a volume", str(exc))
