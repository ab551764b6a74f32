"""XAPI failures as they appear on the wire.

A XAPI failure is not one of the project's exceptions: it is a list of
strings, ``[code, param, ...]``, carried in the ``ErrorDescription`` of a
``{"Status": "Failure"}`` envelope.  Inside the simulator such a failure is
raised as :class:`XapiError` and turned into that envelope by the dispatcher.
The helper functions below build each code with the parameter list XAPI
documents for it (``ocaml/idl/datamodel_errors.ml``).
"""

from __future__ import annotations


class XapiError(Exception):
    """A XAPI failure: ``details`` is ``[code, param, ...]`` (all strings)."""

    def __init__(self, code: str, *params: object) -> None:
        self.details = [str(code)] + [str(p) for p in params]
        super().__init__(self.details)

    @property
    def code(self) -> str:
        return self.details[0]


def session_invalid(ref):
    return XapiError("SESSION_INVALID", ref)


def session_authentication_failed(user):
    return XapiError("SESSION_AUTHENTICATION_FAILED", user,
                     "Authentication failure")


def handle_invalid(cls, ref):
    return XapiError("HANDLE_INVALID", cls, ref)


def uuid_invalid(cls, uuid):
    return XapiError("UUID_INVALID", cls, uuid)


def message_method_unknown(name):
    return XapiError("MESSAGE_METHOD_UNKNOWN", name)


def parameter_count_mismatch(name, expected, received):
    return XapiError("MESSAGE_PARAMETER_COUNT_MISMATCH", name, expected,
                     received)


def field_type_error(field):
    return XapiError("FIELD_TYPE_ERROR", field)


def map_duplicate_key(cls, field, ref, key):
    return XapiError("MAP_DUPLICATE_KEY", cls, field, ref, key)


def internal_error(message):
    return XapiError("INTERNAL_ERROR", message)


def uniqueness_violation(table, field, value):
    """The old (and, for VDI uuids, current) form of a DB uniqueness error."""
    return internal_error('Db_exn.Uniqueness_constraint_violation("%s", "%s", '
                          '"%s")' % (table, field, value))


def scan_uniqueness_failure(table, uuid):
    """A scan that met a uuid already in the pool.

    SM's ``VDI.db_introduce`` gets XAPI's uniqueness error back and the
    scan fails with it as the opterr (xapi-project/sm drivers/SRCommand.py,
    drivers/VDI.py ``_db_introduce``).
    """
    inner = uniqueness_violation(table, "uuid", uuid).details
    return sr_backend_failure(40, str(inner))


def sr_uuid_exists(uuid):
    return XapiError("SR_UUID_EXISTS", uuid)


def sr_has_pbd(sr):
    return XapiError("SR_HAS_PBD", sr)


def sr_no_pbds(sr):
    return XapiError("SR_NO_PBDS", sr)


def sr_not_empty():
    return XapiError("SR_NOT_EMPTY")


def sr_does_not_support_migration(sr):
    return XapiError("SR_DOES_NOT_SUPPORT_MIGRATION", sr)


def sr_not_attached(sr):
    return XapiError("SR_NOT_ATTACHED", sr)


def sr_unknown_driver(driver):
    return XapiError("SR_UNKNOWN_DRIVER", driver)


def sr_operation_not_supported(sr):
    return XapiError("SR_OPERATION_NOT_SUPPORTED", sr)


def pbd_exists(sr, host, pbd):
    return XapiError("PBD_EXISTS", sr, host, pbd)


def device_already_attached(ref):
    return XapiError("DEVICE_ALREADY_ATTACHED", ref)


def device_already_detached(ref):
    return XapiError("DEVICE_ALREADY_DETACHED", ref)


def vdi_in_use(vdi, operation):
    return XapiError("VDI_IN_USE", vdi, operation)


def vdis_in_use(vdis):
    """PBD.unplug's form: the refs of every VDI still in use."""
    return XapiError("VDI_IN_USE", *vdis)


def vdi_not_in_map(vdi):
    return XapiError("VDI_NOT_IN_MAP", vdi)


def vm_bad_power_state(vm, expected, actual):
    return XapiError("VM_BAD_POWER_STATE", vm, expected, actual)


def operation_not_allowed(reason):
    return XapiError("OPERATION_NOT_ALLOWED", reason)


def xenapi_missing_plugin(name):
    return XapiError("XENAPI_MISSING_PLUGIN", name)


def xenapi_plugin_failure(fn, exc_class, message):
    """What XenAPIPlugin.dispatch prints for an exception in ``fn``.

    xen-api ``scripts/examples/python/XenAPIPlugin.py``: ``[fn, the
    exception's class name, str(exception)]``.
    """
    return XapiError("XENAPI_PLUGIN_FAILURE", fn, exc_class, message)


def unknown_xenapi_plugin_function(fn):
    """XenAPIPlugin.dispatch for a function the plugin does not have."""
    return XapiError("UNKNOWN_XENAPI_PLUGIN_FUNCTION", fn)


# --- SM (storage manager) backend failures ----------------------------------
#
# SM reports errors as SR_BACKEND_FAILURE_<n> with XAPI's three parameters
# [status, stdout, stderr]; the human text goes in the second one and some
# probes return XML in the third.

# Texts and numbers: xapi-project/sm drivers/XE_SR_ERRORCODES.xml.
SM_TEXT = {
    40: "The SR scan failed",
    46: "The VDI is not available",
    47: "The SR is not available",
    68: "ISCSI login failed, verify CHAP credentials",
    83: "ISCSI discovery failed",
    95: "The request is missing the target parameter",
    96: "The request is missing or has an incorrect target IQN parameter",
    107: "The SCSIid parameter is missing or incorrect",
    141: "Unable to connect to ISCSI service on target",
    142: "Incorrect value for iSCSI port, must be a number between 1 and "
         "65535",
    202: "General backend error",
}


def sr_backend_failure(number, opterr=None, extra=""):
    text = SM_TEXT.get(number, "SM failure")
    if opterr:
        text = "%s [opterr=%s]" % (text, opterr)
    return XapiError("SR_BACKEND_FAILURE_%d" % number, "", text, extra)
