#!/usr/bin/env bash
# Build (once) a virtualenv with Nova 21.2.4 (Ussuri) + os-xenapi 0.3.4 and
# this project, then run the Nova-level tests in nova_tests/ (Nova's own
# unit tests, stock against the extension: tools/nova-unit-tests.sh).
#
#   tools/nova-venv.sh            # build if needed, then run nova_tests
#   tools/nova-venv.sh --build    # build only
#   NOVA_VENV=/path tools/nova-venv.sh -- <stestr args>
#
# The pins are the verified recipe for Python 3.11 (doc/source/contributor/index.rst):
# Nova 21 imports pkg_resources (setuptools < 81) and oslo_db.concurrency
# (oslo.db 8.2.1, which needs SQLAlchemy 1.3 and the matching alembic).
# Nova's own unit tests (shipped in the nova wheel) need its test
# dependencies: mock 3.0.5 as in Ussuri (mock 5 fails one test with
# InvalidSpecError), oslotest, ddt, requests-mock, wsgi-intercept, whose
# current releases pass them.  Everything else resolves to current releases.
# The venv is rebuilt when this file or the project's requirements change.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${NOVA_VENV:-$ROOT/.tox/nova-venv}
PYTHON=${PYTHON:-python3}

PINS=(
  "setuptools<81"
  "nova==21.2.4"
  "os-xenapi==0.3.4"
  "oslo.db==8.2.1"
  "SQLAlchemy==1.3.24"
  "alembic==1.4.3"
  "mock==3.0.5"
  "oslotest"
  "ddt"
  "requests-mock"
  "wsgi-intercept"
)

run=1
case "${1:-}" in
  --build) run=0; shift ;;
  --) shift ;;
esac

stamp_value() {
  cat "$0" requirements.txt test-requirements.txt setup.cfg pyproject.toml \
    | sha256sum | cut -d' ' -f1
}

want=$(stamp_value)
if [ ! -f "$VENV/.nova-installed" ] \
    || [ "$(cat "$VENV/.nova-installed")" != "$want" ]; then
  start=$(date +%s)
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  if [ ! -d .git ]; then
    export PBR_VERSION=${PBR_VERSION:-0.0.0}
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip wheel
  # One resolution: the pins, the project's own requirements, the project
  # (a regular install, as on a compute host; the tests import
  # nova_xenapi_resign from the checkout, stestr's top dir).
  "$VENV/bin/python" -m pip install -q "${PINS[@]}" \
      -r requirements.txt -r test-requirements.txt .
  "$VENV/bin/python" -W ignore -c "
import nova.virt.xenapi.driver
import os_xenapi.client.session
from nova_xenapi_resign.nova_driver import XenAPIDriver
print('nova-venv: driver', XenAPIDriver.__mro__[2])"
  echo "$want" > "$VENV/.nova-installed"
  echo "nova-venv: built $VENV in $(( $(date +%s) - start )) s"
fi

if [ "$run" = 1 ]; then
  export OS_TEST_PATH=./nova_tests
  export OS_STDOUT_CAPTURE=${OS_STDOUT_CAPTURE:-1}
  export OS_STDERR_CAPTURE=${OS_STDERR_CAPTURE:-1}
  export OS_TEST_TIMEOUT=${OS_TEST_TIMEOUT:-300}
  exec "$VENV/bin/stestr" --test-path ./nova_tests run "$@"
fi
