"""Base test case shared by unit and functional tests."""

import logging
import os
import warnings

import fixtures
import testtools

#: Warnings of third-party code that the tests cannot act on.  eventlet
#: (imported by oslo.service for os-brick and oslo.messaging) warns on
#: import that it is deprecated; the project itself does not use it.
QUIET_WARNINGS = (
    {"action": "ignore", "category": Warning,
     "message": r"\s*Eventlet is deprecated"},
)

# Module level, so that an import made while test modules load (before any
# setUp) is covered too.
for _filter in QUIET_WARNINGS:
    warnings.filterwarnings(**_filter)

_TRUE = ("1", "True", "true")
_FALSE = ("0", "False", "false")
LOG_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


class TestCase(testtools.TestCase):
    """testtools test case with a timeout and captured output.

    Output capture follows the usual OpenStack ``OS_STDOUT_CAPTURE`` /
    ``OS_STDERR_CAPTURE`` / ``OS_LOG_CAPTURE`` switches, so a failing test
    shows what it printed and logged.  Logging is captured unless
    ``OS_LOG_CAPTURE`` is false: stestr shows a passing test's stdout and
    stderr, and an uncaptured log record would land on stderr (Python's
    last-resort handler), so a passing test that logs a warning on purpose
    would print it.  Captured logs are shown for failing tests only.
    """

    def setUp(self):
        super().setUp()
        timeout = int(os.environ.get("OS_TEST_TIMEOUT", "0") or 0)
        if timeout > 0:
            self.useFixture(fixtures.Timeout(timeout, gentle=True))
        if os.environ.get("OS_STDOUT_CAPTURE") in _TRUE:
            stdout = self.useFixture(fixtures.StringStream("stdout")).stream
            self.useFixture(fixtures.MonkeyPatch("sys.stdout", stdout))
        if os.environ.get("OS_STDERR_CAPTURE") in _TRUE:
            stderr = self.useFixture(fixtures.StringStream("stderr")).stream
            self.useFixture(fixtures.MonkeyPatch("sys.stderr", stderr))
        if os.environ.get("OS_LOG_CAPTURE") not in _FALSE:
            self.useFixture(fixtures.FakeLogger(level=logging.DEBUG,
                                                format=LOG_FORMAT))
        # The test runner may reset the warning filters around each test;
        # put the quiet ones back for the test's own lazy imports.
        self.useFixture(fixtures.WarningsFilter(list(QUIET_WARNINGS)))
        self.tmpdir = self.useFixture(fixtures.TempDir()).path
