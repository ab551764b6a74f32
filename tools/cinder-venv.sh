#!/usr/bin/env bash
# Build (once) a virtualenv with Cinder 16.4.2 (Ussuri) and this project,
# then run the real-Cinder tests in cinder_tests/.
#
#   tools/cinder-venv.sh            # build if needed, then run cinder_tests
#   tools/cinder-venv.sh --build    # build only
#   CINDER_VENV=/path tools/cinder-venv.sh -- <stestr args>
#   CINDER_SPEC="cinder>=24,<25" CINDER_PINS=none tools/cinder-venv.sh
#                                   # a current Cinder, unpinned
#
# The pins are the verified recipe for Cinder 16.4.2 on Python 3.11:
# oslo.context 3.4.0 (6.x changed RequestContext's arguments), oslo.db 8.2.1
# with SQLAlchemy 1.3 and the matching alembic, setuptools < 81 (Cinder
# imports pkg_resources), and oslo.utils < 8: oslo.context 3.4.0 holds
# os-brick at 6.1, which still imports oslo_utils.secretutils.md5.  Cinder
# 16's scheduler also needs the collections.Mapping alias that Python 3.10
# removed: cinder_tests/compat.py installs it before Cinder is imported.  The venv is rebuilt when this file
# or the project's requirements change.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${CINDER_VENV:-$ROOT/.tox/cinder-venv}
PYTHON=${PYTHON:-python3}
SPEC=${CINDER_SPEC:-cinder==16.4.2}

PINS=(
  "setuptools<81"
  "oslo.context==3.4.0"
  "oslo.db==8.2.1"
  "SQLAlchemy==1.3.24"
  "alembic==1.4.3"
  "oslo.utils<8"
)
if [ "${CINDER_PINS:-}" = none ]; then
  PINS=()
fi

run=1
case "${1:-}" in
  --build) run=0; shift ;;
  --) shift ;;
esac

stamp_value() {
  { cat "$0" requirements.txt test-requirements.txt setup.cfg pyproject.toml
    echo "$SPEC ${PINS[*]:-}"; } | sha256sum | cut -d' ' -f1
}

want=$(stamp_value)
if [ ! -f "$VENV/.cinder-installed" ] \
    || [ "$(cat "$VENV/.cinder-installed")" != "$want" ]; then
  start=$(date +%s)
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  if [ ! -d .git ] && [ ! -f .git ]; then
    export PBR_VERSION=${PBR_VERSION:-0.0.0}
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip wheel
  # One resolution: Cinder, the pins, the project's own requirements and
  # the project (editable: the tests import it from this checkout).
  "$VENV/bin/python" -m pip install -q "$SPEC" ${PINS[@]+"${PINS[@]}"} \
      -r requirements.txt -r test-requirements.txt -e .
  "$VENV/bin/python" -W ignore -c "
import cinder_tests.compat  # noqa: F401  (the collections.Mapping alias)
from cinder import objects
objects.register_all()
import cinder.volume.manager, cinder.scheduler.manager, cinder.volume.api
import cinder.version
print('cinder-venv: cinder', cinder.version.version_info.release_string())"
  echo "$want" > "$VENV/.cinder-installed"
  echo "cinder-venv: built $VENV in $(( $(date +%s) - start )) s"
fi

if [ "$run" = 1 ]; then
  export OS_STDOUT_CAPTURE=${OS_STDOUT_CAPTURE:-1}
  export OS_STDERR_CAPTURE=${OS_STDERR_CAPTURE:-1}
  export OS_TEST_TIMEOUT=${OS_TEST_TIMEOUT:-300}
  exec "$VENV/bin/stestr" --test-path ./cinder_tests --top-dir ./ run "$@"
fi
