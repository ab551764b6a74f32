#!/usr/bin/env bash
# Nova 21.2.4's own unit tests (shipped in its wheel), run twice with stestr:
# stock, and with the extension active as README tells operators
# (nova-compute-xenapi-resign's activate()).  Every test that passes on stock
# must pass with the extension; the only allowed difference is listed in
# nova_tests/nova_unit/compare.py, which compares the two runs.  Which tests:
# nova_tests/nova_unit/__init__.py; the environment shim:
# nova_tests/nova_unit/environment.py.
#
#   tools/nova-unit-tests.sh        # in the venv of tools/nova-venv.sh
#   NOVA_PYTHON=/env/bin/python tools/nova-unit-tests.sh   # another env (tox)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${NOVA_PYTHON:-}" ]; then
  bash tools/nova-venv.sh --build
  NOVA_PYTHON=${NOVA_VENV:-$(pwd)/.tox/nova-venv}/bin/python
fi
out=${NOVA_UNIT_OUT:-$(pwd)/.tox/nova-unit}
export OS_STDOUT_CAPTURE=1 OS_STDERR_CAPTURE=1 OS_LOG_CAPTURE=1
for mode in stock extension; do
  rm -rf "${out:?}/$mode"
  mkdir -p "$out/$mode"
  "$NOVA_PYTHON" -m stestr --repo-url "$out/$mode" init >/dev/null
  start=$(date +%s)
  # A failing test is reported by the comparison, not here.
  NOVA_UNIT_MODE=$mode "$NOVA_PYTHON" -m stestr --repo-url "$out/$mode" \
      --test-path ./nova_tests/nova_unit --top-dir ./ \
      run --subunit > "$out/$mode.subunit" 2> "$out/$mode.stderr" || true
  echo "nova-unit: $mode run took $(( $(date +%s) - start )) s"
done
exec "$NOVA_PYTHON" -m nova_tests.nova_unit.compare \
    "$out/stock.subunit" "$out/extension.subunit"
