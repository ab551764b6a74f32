"""The clock guard: host.get_servertime answers, skew, refusal, override."""

import datetime
import xmlrpc.client

import fixtures

from nova_xenapi_resign import exception
from nova_xenapi_resign.lease import clock_guard
from tests import base

UTC = datetime.timezone.utc


class TestClockGuard(base.TestCase):

    def test_parses_xapi_datetime_forms(self):
        expected = datetime.datetime(2026, 12, 1, 22, 13, 15, tzinfo=UTC)
        for value in ("20261201T22:13:15Z", "20261201T22:13:15",
                      xmlrpc.client.DateTime("20261201T22:13:15Z"),
                      expected.replace(tzinfo=None)):
            self.assertEqual(expected, clock_guard.parse_servertime(value))

    def test_garbage_is_invalid_input(self):
        exc = self.assertRaises(exception.InvalidInput,
                                clock_guard.parse_servertime, "yesterday")
        self.assertIn("yesterday", str(exc))

    def test_skew_within_limit_after_elapsed(self):
        # 7 s apart, read 3 s apart: 4 s of skew, under 5.
        self.assertEqual(4.0, clock_guard.check_clock_skew(
            "src", "20261201T22:00:00Z", "dst", "20261201T22:00:07Z", 5,
            elapsed=3.0))

    def test_refusal_names_both_hosts_and_the_skew(self):
        exc = self.assertRaises(
            exception.ClockSkewTooLarge, clock_guard.check_clock_skew,
            "host-a", "20261201T22:00:00Z", "host-b", "20261201T23:00:00Z",
            5)
        for part in ("host-a", "host-b", "3600.0 s", "max_clock_skew = 5"):
            self.assertIn(part, str(exc))
        self.assertEqual(exception.EXIT_REFUSED, exc.exit_code)

    def test_zero_disables(self):
        self.assertEqual(3600.0, clock_guard.check_clock_skew(
            "a", "20261201T22:00:00Z", "b", "20261201T21:00:00Z", 0))

    def test_override_is_logged_not_raised(self):
        logger = self.useFixture(fixtures.FakeLogger())
        self.assertEqual(3600.0, clock_guard.check_clock_skew(
            "a", "20261201T22:00:00Z", "b", "20261201T21:00:00Z", 5,
            override=True))
        self.assertIn("Operator override", logger.output)
        self.assertIn("3600.0 s", logger.output)
