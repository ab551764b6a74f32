"""Base test case shared by unit and functional tests."""

import os

import fixtures
import testtools


class TestCase(testtools.TestCase):
    """testtools test case with a timeout and captured output.

    Output capture follows the usual OpenStack ``OS_STDOUT_CAPTURE`` /
    ``OS_STDERR_CAPTURE`` / ``OS_LOG_CAPTURE`` switches, so a failing test
    shows what it printed and logged.
    """

    def setUp(self):
        super().setUp()
        timeout = int(os.environ.get("OS_TEST_TIMEOUT", "0") or 0)
        if timeout > 0:
            self.useFixture(fixtures.Timeout(timeout, gentle=True))
        if os.environ.get("OS_STDOUT_CAPTURE") in ("1", "True", "true"):
            stdout = self.useFixture(fixtures.StringStream("stdout")).stream
            self.useFixture(fixtures.MonkeyPatch("sys.stdout", stdout))
        if os.environ.get("OS_STDERR_CAPTURE") in ("1", "True", "true"):
            stderr = self.useFixture(fixtures.StringStream("stderr")).stream
            self.useFixture(fixtures.MonkeyPatch("sys.stderr", stderr))
        if os.environ.get("OS_LOG_CAPTURE") in ("1", "True", "true"):
            self.useFixture(fixtures.LoggerFixture(nuke_handlers=False,
                                                   level=None))
        self.tmpdir = self.useFixture(fixtures.TempDir()).path
