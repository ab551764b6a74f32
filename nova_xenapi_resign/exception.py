"""The one exception hierarchy of nova-xenapi-resign.

Every error carries a message template (``msg_fmt``) filled from keyword
arguments, in the style of os-brick's ``BrickException``: the keywords are kept
on the instance (``exc.kwargs``) so callers and tests can inspect the device,
field, found and expected values without parsing the text.

``exit_code`` tells the command line how to end: 1 for an error, 3 for a
refusal made to protect data (nothing was written).
"""

from __future__ import annotations

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3


class ResignException(Exception):
    """Base class: a message template filled from keyword arguments."""

    msg_fmt = "An unknown error occurred."
    exit_code = EXIT_ERROR

    def __init__(self, message: str | None = None, **kwargs: object) -> None:
        self.kwargs = kwargs
        if message is None:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError, ValueError):
                # A template that cannot be filled must not hide the real
                # error: log it and fall back to the raw template plus args.
                LOG.exception("Cannot format %s message; kwargs: %s",
                              type(self).__name__, sorted(kwargs))
                message = "%s (%r)" % (self.msg_fmt, kwargs)
        self.msg = message
        super().__init__(message)


# --- Input and naming ---

class InvalidInput(ResignException):
    msg_fmt = "Invalid input: %(reason)s"


class UsageError(InvalidInput):
    """The command line is incomplete or contradicts itself (exit 2)."""

    msg_fmt = "Usage: %(reason)s"
    exit_code = EXIT_USAGE


class InvalidTarget(UsageError):
    """A target SR uuid a real host would refuse to attach (exit 2)."""

    msg_fmt = "Invalid target SR uuid %(target)r: %(reason)s"


class InvalidConnectionData(InvalidInput):
    msg_fmt = ("Invalid connection data: %(field)s %(reason)s "
               "(connection data: %(data)s)")


# --- On-disk formats ---

class FormatError(ResignException):
    """A structure on a device or in a buffer is not what the format says.

    Every format error names the device, the structure, the byte offset and
    what was expected versus what was found.
    """

    msg_fmt = ("%(device)s: %(structure)s at byte %(offset)s: "
               "expected %(expected)s, found %(found)s")

    def __init__(self, message: str | None = None, *,
                 device: str = "<buffer>", structure: str = "data",
                 offset: int | str = "?", expected: object = "?",
                 found: object = "?", **kwargs: object) -> None:
        super().__init__(message, device=device, structure=structure,
                         offset=offset, expected=expected, found=found,
                         **kwargs)


class LvmLabelError(FormatError):
    """The LVM2 label sector or pv_header is missing or corrupt."""


class LvmMetadataError(FormatError):
    """An LVM2 metadata area header or its raw locations are corrupt."""


class LvmTextError(FormatError):
    """LVM2 metadata text does not follow the libdm config grammar."""


class VhdFormatError(FormatError):
    """A VHD footer, header or parent locator is corrupt."""


class SrMetadataError(FormatError):
    """The MGT (XSSM) SR metadata volume is corrupt."""


# --- Devices ---

class DeviceError(ResignException):
    msg_fmt = "%(device)s: %(reason)s"


class UnsafeOperation(ResignException):
    """Refused to protect data: nothing was written."""

    msg_fmt = "Refused on %(device)s: %(reason)s"
    exit_code = EXIT_REFUSED


class DeviceReadOnly(UnsafeOperation):
    msg_fmt = ("Refused on %(device)s: the device is read-only (%(reason)s); "
               "nothing was written")


class BackupMismatch(UnsafeOperation):
    """A backup that cannot be proven to belong to this device's state."""

    msg_fmt = ("Refused on %(device)s: backup %(path)s does not match this "
               "device: %(reason)s")


class DeviceInUse(UnsafeOperation):
    msg_fmt = ("Refused on %(device)s: the device is in use (%(reason)s); "
               "detach it from every host and deactivate its LVs first")


# --- On-LUN lease (one writer per LVHD SR) ----------------------------------

class LeaseError(ResignException):
    """The on-LUN lease of an SR could not be used as asked."""

    msg_fmt = "Lease of SR %(sr)s on %(device)s: %(reason)s"


class LeaseRecordError(FormatError):
    """A lease sector is torn, foreign or of an unknown version."""


class LeaseNotFound(LeaseError):
    """The LUN has no lease volume (an LVHD SR made elsewhere)."""

    msg_fmt = ("Lease of SR %(sr)s on %(device)s: no %(lv)s volume in the "
               "LVM metadata; %(reason)s")


class LeaseHeld(LeaseError):
    """Refused: another host owns (or is taking) the lease."""

    msg_fmt = ("Lease of SR %(sr)s on %(device)s is held by %(owner)s "
               "(generation %(generation)s): %(reason)s")
    exit_code = EXIT_REFUSED


class LeaseLost(LeaseError):
    """The caller believed it owned the lease, but the disk says otherwise.

    The caller must stop changing the SR at once.
    """

    msg_fmt = ("Lease of SR %(sr)s on %(device)s lost by %(me)s: the disk "
               "names %(owner)s (generation %(generation)s); %(reason)s")


class LeaseExpired(LeaseError):
    """The owner did not renew within its duration; it must re-acquire."""

    msg_fmt = ("Lease of SR %(sr)s on %(device)s expired for %(me)s: last "
               "renewal %(age).1f s ago, duration %(duration).1f s")


class ClockSkewTooLarge(ResignException):
    """Refused: two pools' host clocks differ more than allowed."""

    msg_fmt = ("Clock skew between host %(source)s (%(source_time)s) and "
               "host %(dest)s (%(dest_time)s) is %(skew).1f s, more than "
               "[xenapi_resign] max_clock_skew = %(max_skew)s s; fix the "
               "hosts' NTP, or override explicitly")
    exit_code = EXIT_REFUSED


# --- XenAPI storage and live migration --------------------------------------

class StorageError(ResignException):
    """A XAPI storage operation (SR/PBD/VDI) failed."""

    msg_fmt = "Storage error: %(reason)s"


class InvalidPluginArguments(InvalidInput):
    """A dom0 plugin call whose arguments cannot reach the plugin."""

    msg_fmt = "Arguments of dom0 plugin call %(plugin)s %(fn)s: %(reason)s"


class LiveMigrationPreCheckError(ResignException):
    """A volume-backed live migration was refused before XAPI moved anything.

    Names the volume, the SR UUID the source uses, the SR UUID the
    destination reported, and what the operator should do about it.
    """

    msg_fmt = ("Live migration refused for volume %(volume_id)s: %(reason)s "
               "(source SR uuid: %(source_sr_uuid)s; destination SR uuid: "
               "%(dest_sr_uuid)s). %(action)s")


# --- Cinder volumes ---------------------------------------------------------

class VolumeResignError(ResignException):
    """Resigning a new Cinder volume failed at one step of the hook."""

    msg_fmt = ("Resignature of volume %(volume_id)s failed at %(step)s "
               "(device %(device)s): %(reason)s")


class VolumeResignRefused(VolumeResignError):
    """The resignature of a new Cinder volume was refused: nothing written.

    Final: retrying (or rescheduling the create) meets the same refusal.
    """

    exit_code = EXIT_REFUSED


class LvhdVolumeError(VolumeResignError):
    """Making, cloning or importing an LVHD (VDI-per-LUN) volume failed."""

    msg_fmt = ("LVHD volume %(volume_id)s: %(step)s failed (device "
               "%(device)s): %(reason)s")


class LvhdVolumeRefused(LvhdVolumeError, VolumeResignRefused):
    """An LVHD volume step refused before anything was written or published.

    Final, like :class:`VolumeResignRefused`.
    """


class LvhdVolumeOperationRefused(ResignException):
    """A Cinder operation an LVHD (VDI-per-LUN) volume cannot take, refused.

    Raised before the backend or the LUN changed: the operation would
    write raw bytes over, or resize underneath, the LVHD layout XenServer
    reads.  Names the volume, the operation, why, and what to do instead.
    """

    msg_fmt = ("Volume %(volume_id)s holds an LVHD SR (VDI-per-LUN): "
               "%(operation)s refused, nothing changed: %(reason)s. "
               "Instead: %(advice)s")


class BackupError(ResignException):
    msg_fmt = "Backup %(path)s: %(reason)s"


class ResignVerifyError(ResignException):
    msg_fmt = ("%(device)s: verification after resignature failed: "
               "%(what)s is %(found)s, expected %(expected)s")
