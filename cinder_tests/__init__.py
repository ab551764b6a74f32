"""Real-Cinder tests: the wrapper driver inside Cinder's own services.

Like ``cinder-volume`` itself, the process is eventlet-patched before Cinder
is imported, and Python 3.11 gets the alias Cinder 16's scheduler needs.
"""

import eventlet

eventlet.monkey_patch()

from cinder_tests import compat  # noqa: E402,F401  (before any Cinder import)
