"""Compare Nova's unit-test results, stock against the extension.

``python -m nova_tests.nova_unit.compare STOCK.subunit EXTENSION.subunit``
reads two subunit v2 streams (``stestr run --subunit``) and fails (exit 1)
when a test that passed on stock does not pass with the extension, unless
it is in :data:`ALLOWED_DIFFERENCES`, or when the two runs did not run the
same tests.  It prints one summary line per run and every difference.
"""

import sys

import subunit
import testtools

#: The only Nova test allowed to pass on stock and fail with the extension:
#: the extension registers XenapiLiveMigrateData 1.5 (``volume_sr_uuid_map``)
#: in Nova's object registry, so its fingerprint differs from the one Nova's
#: test pins, by design.
ALLOWED_DIFFERENCES = frozenset({
    "nova.tests.unit.objects.test_objects.TestObjectVersions.test_versions",
})

_PASSED = ("success", "xfail")


def statuses(path):
    """``{test id: final status}`` of one subunit v2 stream."""
    result = {}

    def on_test(test):
        if test["status"] in ("exists", "inprogress"):
            return
        result[test["id"]] = test["status"]

    with open(path, "rb") as stream:
        case = subunit.ByteStreamToStreamResult(stream, non_subunit_name=None)
        summary = testtools.StreamToDict(on_test)
        summary.startTestRun()
        try:
            case.run(summary)
        finally:
            summary.stopTestRun()
    return result


def summary_line(name, result):
    counts = {}
    for status in result.values():
        counts[status] = counts.get(status, 0) + 1
    return "%s: %d tests, %s" % (name, len(result), ", ".join(
        "%d %s" % (n, s) for s, n in sorted(counts.items())))


def differences(stock, extension):
    """``(regressions, allowed, missing)``: sorted test ids."""
    regressions, allowed = [], []
    for test_id, status in sorted(stock.items()):
        if status not in _PASSED:
            continue
        if extension.get(test_id) in _PASSED:
            continue
        (allowed if test_id in ALLOWED_DIFFERENCES
         else regressions).append(test_id)
    missing = sorted(set(stock) ^ set(extension))
    return regressions, allowed, missing


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    stock, extension = statuses(argv[0]), statuses(argv[1])
    print(summary_line("stock", stock))
    print(summary_line("extension", extension))
    regressions, allowed, missing = differences(stock, extension)
    for test_id in allowed:
        print("allowed difference: %s (%s with the extension)"
              % (test_id, extension.get(test_id)))
    for test_id in missing:
        print("run in only one mode: %s" % test_id)
    for test_id in regressions:
        print("REGRESSION: %s passes on stock, %s with the extension"
              % (test_id, extension.get(test_id, "not run")))
    if not stock:
        print("no stock results")
        return 1
    return 1 if regressions or missing else 0


if __name__ == "__main__":
    sys.exit(main())
