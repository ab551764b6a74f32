"""The pool database: typed records, refs, uuids and the query language.

Each XAPI class is a table of ``ref -> record``.  A record is a plain dict of
Python values; set-of-ref fields that are the inverse of a ref field (such as
``SR.VDIs`` or ``VM.VBDs``) are not stored but computed when read, so they can
never go stale.  Everything that leaves the database goes through
:func:`marshal`, which applies XAPI's XML-RPC conventions: no ``None`` and
64-bit integers as decimal strings.

The database itself is not locked: the dispatcher serialises access to it
with the pool lock.
"""

from __future__ import annotations

import copy
import datetime
import re
import uuid as uuidlib
import xmlrpc.client

from nova_xenapi_resign.simulator import errors

NULL_REF = "OpaqueRef:NULL"
EPOCH = xmlrpc.client.DateTime("19700101T00:00:00Z")


def _defaults():
    """Per class: stored fields and their default values."""
    common = {"uuid": "", "other_config": {}}
    named = dict(common, name_label="", name_description="")
    return {
        "pool": dict(named, master=NULL_REF, default_SR=NULL_REF,
                     suspend_image_SR=NULL_REF, crash_dump_SR=NULL_REF),
        "host": dict(named, hostname="", address="", enabled=True,
                     API_version_major=2, API_version_minor=16,
                     API_version_vendor="XenSource",
                     software_version={}, suspend_image_sr=NULL_REF,
                     crash_dump_sr=NULL_REF, capabilities=[],
                     cpu_info={}, memory_overhead=0),
        "SR": dict(named, type="", content_type="", shared=False,
                   sm_config={}, physical_size=0, physical_utilisation=0,
                   virtual_allocation=0, allowed_operations=[],
                   current_operations={}, is_tools_sr=False,
                   local_cache_enabled=False, introduced_by=NULL_REF,
                   clustered=False, blobs={}, tags=[]),
        "PBD": dict(common, host=NULL_REF, SR=NULL_REF, device_config={},
                    currently_attached=False),
        "VDI": dict(named, SR=NULL_REF, type="user", sharable=False,
                    read_only=False, location="", xenstore_data={},
                    sm_config={}, managed=True, missing=False,
                    virtual_size=0, physical_utilisation=0,
                    metadata_of_pool=NULL_REF, is_a_snapshot=False,
                    snapshot_time=EPOCH, snapshot_of=NULL_REF,
                    on_boot="persist", allow_caching=False,
                    storage_lock=False, parent=NULL_REF, tags=[],
                    allowed_operations=[], current_operations={},
                    is_tools_iso=False, cbt_enabled=False),
        "VBD": dict(common, VM=NULL_REF, VDI=NULL_REF, device="",
                    userdevice="0", bootable=False, mode="RW", type="Disk",
                    unpluggable=True, empty=False, currently_attached=False,
                    storage_lock=False, status_code=0, status_detail="",
                    qos_algorithm_type="", qos_algorithm_params={},
                    runtime_properties={}, allowed_operations=[],
                    current_operations={}),
        "VM": dict(named, power_state="Halted", is_a_template=False,
                   is_control_domain=False, is_a_snapshot=False,
                   snapshot_of=NULL_REF, resident_on=NULL_REF,
                   affinity=NULL_REF, domid=-1, memory_static_max=0,
                   memory_dynamic_max=0, memory_dynamic_min=0,
                   memory_static_min=0, VCPUs_max=1, VCPUs_at_startup=1,
                   suspend_VDI=NULL_REF, platform={}, xenstore_data={},
                   PV_kernel="", PV_ramdisk="", PV_args="",
                   PV_bootloader="", HVM_boot_policy="",
                   HVM_boot_params={}, actions_after_shutdown="destroy",
                   actions_after_reboot="restart",
                   actions_after_crash="destroy", ha_always_run=False,
                   user_version=1, tags=[], blocked_operations={},
                   allowed_operations=[], current_operations={}),
        "VIF": dict(common, VM=NULL_REF, network=NULL_REF, device="0",
                    MAC="", MTU=1500, currently_attached=False,
                    qos_algorithm_type="", qos_algorithm_params={}),
        "network": dict(named, bridge="", MTU=1500, blobs={}, tags=[]),
        "PIF": dict(common, device="eth0", host=NULL_REF, network=NULL_REF,
                    MAC="", MTU=1500, VLAN=-1, management=False,
                    physical=True, currently_attached=True,
                    ip_configuration_mode="Static", IP="", netmask="",
                    gateway="", DNS=""),
        "task": dict(named, status="pending", progress=0.0, result="",
                     error_info=[], created=EPOCH, finished=EPOCH,
                     resident_on=NULL_REF, type="", subtask_of=NULL_REF,
                     allowed_operations=[], current_operations={}),
        "session": dict(common, this_host=NULL_REF, this_user=NULL_REF,
                        originator="", last_active=EPOCH, pool=False,
                        is_local_superuser=True, auth_user_name="",
                        validation_time=EPOCH),
    }


DEFAULTS = _defaults()
CLASSES = tuple(DEFAULTS)

# Computed set-of-ref fields: (class, field) -> (other class, its ref field).
INVERSE = {
    ("host", "PBDs"): ("PBD", "host"),
    ("host", "PIFs"): ("PIF", "host"),
    ("host", "resident_VMs"): ("VM", "resident_on"),
    ("SR", "PBDs"): ("PBD", "SR"),
    ("SR", "VDIs"): ("VDI", "SR"),
    ("VDI", "VBDs"): ("VBD", "VDI"),
    ("VDI", "snapshots"): ("VDI", "snapshot_of"),
    ("VM", "VBDs"): ("VBD", "VM"),
    ("VM", "VIFs"): ("VIF", "VM"),
    ("VM", "snapshots"): ("VM", "snapshot_of"),
    ("network", "PIFs"): ("PIF", "network"),
    ("network", "VIFs"): ("VIF", "network"),
}


def new_ref() -> str:
    return "OpaqueRef:%s" % uuidlib.uuid4()


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def fields_of(cls):
    """Every readable field of a class, stored and computed."""
    names = set(DEFAULTS[cls])
    names.update(f for (c, f) in INVERSE if c == cls)
    return names


#: Enum fields and their canonical spellings.  XAPI reads enum values
#: case-insensitively and stores the datamodel's spelling
#: (xapi-project/xen-api ocaml/idl/datamodel.ml; the generated
#: ``enum_of_string`` lowercases before matching).
ENUMS = {
    ("VBD", "mode"): ("RO", "RW"),
    ("VBD", "type"): ("CD", "Disk", "Floppy"),
    ("VDI", "type"): ("system", "user", "ephemeral", "suspend", "crashdump",
                      "ha_statefile", "metadata", "redo_log", "rrd",
                      "pvs_cache", "cbt_metadata"),
}


def _canonical_enum(cls, field, value):
    if not isinstance(value, str):
        raise errors.field_type_error(field)
    for name in ENUMS[(cls, field)]:
        if name.lower() == value.lower():
            return name
    raise errors.field_type_error(field)


def coerce(cls, field, value):
    """Convert a wire value to the stored type of ``cls.field``."""
    if (cls, field) in ENUMS:
        return _canonical_enum(cls, field, value)
    default = DEFAULTS[cls][field]
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise ValueError(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ValueError(value)
            return {str(k): v for k, v in value.items()}
        if isinstance(default, list):
            if not isinstance(value, (list, tuple)):
                raise ValueError(value)
            return list(value)
        if isinstance(default, xmlrpc.client.DateTime):
            if isinstance(value, datetime.datetime):
                return xmlrpc.client.DateTime(value)
            return xmlrpc.client.DateTime(value)
        if not isinstance(value, str):
            raise ValueError(value)
        return value
    except (TypeError, ValueError):
        raise errors.field_type_error(field)


class Database(object):
    """Tables of records for one pool."""

    def __init__(self):
        self.tables = {cls: {} for cls in CLASSES}

    # --- records ---------------------------------------------------------

    def create(self, cls, ref=None, **fields):
        unknown = set(fields) - set(DEFAULTS[cls])
        if unknown:
            raise errors.internal_error("unknown %s fields: %s"
                                        % (cls, sorted(unknown)))
        rec = copy.deepcopy(DEFAULTS[cls])
        rec.update(copy.deepcopy(fields))
        if not rec["uuid"]:
            rec["uuid"] = new_uuid()
        ref = ref or new_ref()
        self.tables[cls][ref] = rec
        return ref

    def exists(self, cls, ref):
        return isinstance(ref, str) and ref in self.tables[cls]

    def raw(self, cls, ref):
        """The stored record itself (mutable); HANDLE_INVALID if unknown."""
        try:
            return self.tables[cls][ref]
        except (KeyError, TypeError):
            raise errors.handle_invalid(cls, ref)

    def destroy(self, cls, ref):
        self.raw(cls, ref)
        del self.tables[cls][ref]

    def get(self, cls, ref, field):
        rec = self.raw(cls, ref)
        if field in rec:
            return rec[field]
        other = INVERSE.get((cls, field))
        if other is None:
            raise KeyError(field)
        ocls, ofield = other
        return [r for r, orec in self.tables[ocls].items()
                if orec.get(ofield) == ref]

    def set(self, cls, ref, field, value):
        self.raw(cls, ref)[field] = value

    def record(self, cls, ref):
        """A full record (stored and computed fields), a copy."""
        rec = copy.deepcopy(self.raw(cls, ref))
        for (c, field) in INVERSE:
            if c == cls:
                rec[field] = self.get(cls, ref, field)
        return rec

    def all_refs(self, cls):
        return list(self.tables[cls])

    def all_records(self, cls):
        return {ref: self.record(cls, ref) for ref in self.tables[cls]}

    def find(self, cls, **match):
        """Refs whose stored fields equal all of ``match``."""
        return [ref for ref, rec in self.tables[cls].items()
                if all(rec.get(k) == v for k, v in match.items())]

    def by_uuid(self, cls, uuid):
        refs = self.find(cls, uuid=uuid)
        if not refs:
            raise errors.uuid_invalid(cls, uuid)
        return refs[0]

    def uuid_taken(self, uuid):
        """Whether any record of any class has this uuid.

        XAPI's database keeps one uuid -> ref index over every table
        (xapi-project/xen-api ocaml/database/db_cache_types.ml, the
        ``KeyMap`` of ``Database``), so an SR cannot take a VDI's or a VM's
        uuid either.
        """
        return any(rec.get("uuid") == uuid for table in self.tables.values()
                   for rec in table.values())

    def where(self, cls, expression):
        query = parse_query(expression)
        out = {}
        for ref in self.tables[cls]:
            rec = self.record(cls, ref)
            if query(rec):
                out[ref] = rec
        return out


# --- XAPI's query language (get_all_records_where) ---------------------------
#
#   expr    := or
#   or      := and ("or" and)*
#   and     := unary ("and" unary)*
#   unary   := "not" unary | "(" expr ")" | "true" | "false" | value "=" value
#   value   := "field" STRING | STRING
#
# Field names are database column names: a namespaced field such as
# name_label is spelt name__label; the API spelling is accepted too.  Values
# compare as their XAPI string form (booleans as "true"/"false").

_TOKEN = re.compile(r'\s*(?:(\()|(\))|(=)|"((?:[^"\\]|\\.)*)"|([A-Za-z_]+))')


class QueryError(ValueError):
    pass


def _tokens(text):
    pos, out = 0, []
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise QueryError("bad query at %d: %r" % (pos, text[pos:]))
        pos = m.end()
        if m.group(1):
            out.append(("(", None))
        elif m.group(2):
            out.append((")", None))
        elif m.group(3):
            out.append(("=", None))
        elif m.group(4) is not None:
            out.append(("str", re.sub(r"\\(.)", r"\1", m.group(4))))
        else:
            out.append(("word", m.group(5).lower()))
    return out


def _as_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _field_value(rec, name):
    if name in rec:
        return rec[name]
    alt = name.replace("__", "_")
    if alt in rec:
        return rec[alt]
    return None


def parse_query(text):
    """Compile a XAPI query expression into ``predicate(record) -> bool``."""
    toks = _tokens(text)
    pos = [0]

    def peek():
        return toks[pos[0]] if pos[0] < len(toks) else (None, None)

    def take(kind, word=None):
        tok = peek()
        if tok[0] != kind or (word is not None and tok[1] != word):
            raise QueryError("expected %s in %r" % (word or kind, text))
        pos[0] += 1
        return tok

    def value():
        tok = peek()
        if tok == ("word", "field"):
            pos[0] += 1
            name = take("str")[1]
            return lambda rec: _as_text(_field_value(rec, name))
        lit = take("str")[1]
        return lambda rec: lit

    def unary():
        tok = peek()
        if tok == ("word", "not"):
            pos[0] += 1
            inner = unary()
            return lambda rec: not inner(rec)
        if tok[0] == "(":
            pos[0] += 1
            inner = expr()
            take(")")
            return inner
        if tok == ("word", "true"):
            pos[0] += 1
            return lambda rec: True
        if tok == ("word", "false"):
            pos[0] += 1
            return lambda rec: False
        left = value()
        take("=")
        right = value()
        return lambda rec: left(rec) == right(rec)

    def conj():
        node = unary()
        while peek() == ("word", "and"):
            pos[0] += 1
            node = (lambda a, b: lambda rec: a(rec) and b(rec))(node, unary())
        return node

    def expr():
        node = conj()
        while peek() == ("word", "or"):
            pos[0] += 1
            node = (lambda a, b: lambda rec: a(rec) or b(rec))(node, conj())
        return node

    if not toks:
        return lambda rec: True
    result = expr()
    if pos[0] != len(toks):
        raise QueryError("trailing input in %r" % text)
    return result


# --- wire form ---------------------------------------------------------------

def marshal(value):
    """XAPI's XML-RPC form: ints as strings, no None, tuples as lists."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return {str(k): marshal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [marshal(v) for v in value]
    return value
