"""A test fixture that starts a SAN and N simulated pools.

Usage::

    sim = self.useFixture(SimulatorFixture(pools=2))
    sim.san.create_lun("192.0.2.5:3260", "iqn.2010-01.com.example:vol1", 0,
                       64 * 2**20)
    session = sim.session(0)          # XenAPI.Session, logged in
    session.xenapi.SR.get_all()
    sim.pools[0].settings["relax-xsm-sr-check"] = False
    sim.pools[0].hazards              # list of hazard dicts

``credentials=("root", "secret")`` makes every pool refuse any other login
with SESSION_AUTHENTICATION_FAILED; :meth:`session` logs in with them.

Everything is torn down (servers stopped, sessions logged out, SAN
directory removed when the fixture created it) on cleanup.

The class speaks the fixture protocol (``setUp``, ``cleanUp``,
``getDetails``) that ``testtools.TestCase.useFixture`` and
``fixtures.Fixture.useFixture`` drive, and is a context manager, without
importing the test-only ``fixtures`` package: the simulator ships in the
product package, which does not depend on it.
"""

from __future__ import annotations

import shutil
import tempfile
import xmlrpc.client

from nova_xenapi_resign.simulator import server as servermod


class SimulatorFixture(object):

    def __init__(self, pools=2, hosts=1, san_dir=None, settings=None,
                 credentials=None, lvhd_reader=None):
        self._cleanups = []
        self.npools = pools
        self.hosts = hosts
        self.san_dir = san_dir
        self.settings = settings
        self.credentials = credentials
        self.lvhd_reader = lvhd_reader
        self.simulation = None

    # --- the fixture protocol ---------------------------------------------

    def setUp(self):
        """Start the SAN and the pools; on failure undo what was started."""
        try:
            self._setUp()
        except BaseException:
            self.cleanUp()
            raise

    def cleanUp(self):
        """Run the cleanups, last first; re-raise the first failure."""
        first = None
        while self._cleanups:
            func, args = self._cleanups.pop()
            try:
                func(*args)
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first

    def addCleanup(self, func, *args):
        self._cleanups.append((func, args))

    def getDetails(self):
        return {}

    def __enter__(self):
        self.setUp()
        return self

    def __exit__(self, *exc_info):
        self.cleanUp()

    # --- the simulation ---------------------------------------------------

    def _setUp(self):
        if self.san_dir is None:
            self.san_dir = tempfile.mkdtemp(prefix="xapi-sim-san-")
            self.addCleanup(shutil.rmtree, self.san_dir, True)
        self.simulation = servermod.serve(
            self.san_dir, self.npools, hosts=self.hosts,
            settings=self.settings, credentials=self.credentials,
            lvhd_reader=self.lvhd_reader)
        self.addCleanup(self.simulation.stop)

    @property
    def san(self):
        return self.simulation.san

    @property
    def pools(self):
        return self.simulation.pools

    @property
    def urls(self):
        return self.simulation.urls

    def session(self, index=0, builtin_types=False, user=None,
                password=None):
        """A logged-in PyPI ``XenAPI.Session`` to pool ``index``.

        ``user``/``password`` default to the fixture's ``credentials``
        (``("root", "password")`` without any).  ``builtin_types=True``
        gives the transport os-xenapi needs on Python 3 (base64 replies as
        ``bytes``).
        """
        import XenAPI
        default_user, default_password = self.credentials or ("root",
                                                              "password")
        user = default_user if user is None else user
        password = default_password if password is None else password
        transport = xmlrpc.client.Transport(use_builtin_types=builtin_types)
        session = XenAPI.Session(self.urls[index], transport=transport)
        session.xenapi.login_with_password(user, password, "2.1",
                                           "sim-fixture")
        self.addCleanup(_logout, session)
        return session


def _logout(session):
    try:
        session.xenapi.session.logout()
    except Exception:
        pass
