"""Hypothesis settings shared by the property tests of the on-disk formats.

``FUZZ_EXAMPLES`` (tox passes it through) sets how many examples each
property tries: 200 by default, ``tox -e fuzz`` uses many more.  No
deadline: a shared CI machine must not turn a slow example into a failure.
"""

import os

from hypothesis import settings

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
                deadline=None)
