"""A device that loses power in the middle of a write sequence.

Crash-safety tests open their image through :class:`CrashingDevice` and
check what an interrupted run leaves on the disk.
"""

import os

from nova_xenapi_resign.lvhd import device


class Crash(Exception):
    """The machine stopped: not a product exception, nothing catches it."""


class CrashingDevice(device.Device):
    """Stops at the ``k``-th write (1-based); earlier writes all land.

    With ``torn`` the k-th write lands in part: all but the last 472 bytes
    of its last sector, as a power cut in the middle of a sector would.
    """

    def __init__(self, path, writable, k, torn=False):
        super().__init__(path, writable=writable)
        self.k, self.torn = k, torn

    def write(self, offset, data):
        if self.writes + 1 == self.k:
            if self.torn:
                cut = len(data) - 512 + 40
                os.pwrite(self._fd, bytes(data[:cut]), offset)
            raise Crash("crash at write %d" % self.k)
        super().write(offset, data)
