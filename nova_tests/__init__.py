"""Tests that run Nova's own XenAPI driver code (``tox -e nova`` only).

They need Nova 21.2.4 and os-xenapi 0.3.4 (``tools/nova-venv.sh``), so they
live outside ``tests/`` and the normal ``stestr run`` never collects them.
"""
