"""Python 3.11 compatibility shim for Cinder 16 (Ussuri), tests only.

Cinder 16.4.2's scheduler (``cinder/scheduler/evaluator`` and
``host_manager``) still spells ``collections.Mapping``, an alias Python 3.10
removed in favour of ``collections.abc.Mapping``.  Importing this module
before Cinder restores exactly that alias (and its ``MutableMapping`` /
``Iterable`` siblings, which the same releases spell the old way) and
nothing else; it changes nothing on a Python or Cinder that does not need
it.  Cinder 18+ uses ``collections.abc`` and never reads the alias.
"""

import collections
import collections.abc

for _name in ("Mapping", "MutableMapping", "Iterable", "Callable"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))
