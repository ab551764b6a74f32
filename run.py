#!/usr/bin/env python3
"""Set everything up in ``.venv`` and run the demo or the whole test suite.

    python3 run.py demo    # the main job: xenapi-resign demo
    python3 run.py test    # unit + functional tests

Needs only Python 3.11+ (with venv or pip). As root on Debian, ``test``
also installs the Debian packages the functional tests use (lvm2,
libvhdi-utils, qemu-utils, strace, and dmidecode for os-brick) when they
are missing; set
RUN_PY_NO_APT=1 to stop it. Extra arguments are passed on (to stestr for
``test``).
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(ROOT, ".venv")
BIN = os.path.join(VENV, "bin")
REQUIREMENTS = ("requirements.txt", "test-requirements.txt", "pyproject.toml",
                "setup.cfg")
DEBIAN_TOOLS = {"lvm": "lvm2", "vhdiinfo": "libvhdi-utils",
                "qemu-img": "qemu-utils", "strace": "strace",
                "dmidecode": "dmidecode"}


def say(msg):
    print("run.py: %s" % msg, flush=True)


def call(cmd, **kwargs):
    say("$ " + " ".join(cmd))
    return subprocess.call(cmd, cwd=ROOT, **kwargs)


def check(cmd, **kwargs):
    if call(cmd, **kwargs) != 0:
        sys.exit("run.py: command failed: %s" % " ".join(cmd))


def make_venv():
    if os.path.exists(os.path.join(BIN, "python")):
        return
    say("step 1/3: creating %s" % VENV)
    if call([sys.executable, "-m", "venv", VENV]) == 0:
        return
    # Debian without python3-venv: fall back to virtualenv from PyPI.
    shutil.rmtree(VENV, ignore_errors=True)
    check([sys.executable, "-m", "pip", "install", "--user", "virtualenv"])
    check([sys.executable, "-m", "virtualenv", VENV])


def package_count(line):
    """'Successfully installed a-1 b-2' -> 'Successfully installed: 2'."""
    if ":" in line:
        what, _, names = line.partition(":")
    else:
        words = line.split()
        what, names = " ".join(words[:2]), " ".join(words[2:])
    return "%s: %d" % (what.strip(), len(names.split()))


def pip_install(args, env):
    """Run pip, printing one numbered line per package it collects.

    pip's full output (hundreds of lines, no progress bar when not on a
    terminal) is kept and shown only if pip fails, so a first run shows
    steady progress instead of a minute of silence.
    """
    cmd = [os.path.join(BIN, "python"), "-m", "pip", "install",
           "--progress-bar", "off"] + args
    say("$ " + " ".join(cmd))
    proc = subprocess.Popen(cmd, cwd=ROOT,
                            env=dict(env, PYTHONUNBUFFERED="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    count = 0
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(("Collecting ", "Obtaining ")):
            count += 1
            say("  [%d] %s" % (count, line.split()[1]))
        elif line.startswith(("Installing collected", "Successfully")):
            say("  " + package_count(line))
    if proc.wait() != 0:
        sys.stdout.write("".join(lines))
        sys.exit("run.py: command failed: %s" % " ".join(cmd))


def install():
    make_venv()
    digest = hashlib.sha256()
    for name in REQUIREMENTS:
        with open(os.path.join(ROOT, name), "rb") as f:
            digest.update(f.read())
    stamp = os.path.join(VENV, ".installed")
    if os.path.exists(stamp) and open(stamp).read() == digest.hexdigest():
        return
    env = dict(os.environ)
    if not os.path.isdir(os.path.join(ROOT, ".git")):
        env.setdefault("PBR_VERSION", "0.0.0")
    start = time.monotonic()
    say("step 2/3: upgrading pip in .venv")
    pip_install(["--upgrade", "pip"], env)
    say("step 3/3: installing the requirements and this project into .venv "
        "(about a minute the first time; skipped while they are unchanged)")
    pip_install(["-r", "requirements.txt", "-r", "test-requirements.txt",
                 "-e", "."], env)
    with open(stamp, "w") as f:
        f.write(digest.hexdigest())
    say("installed in %.0f s" % (time.monotonic() - start))


def install_debian_tools():
    missing = sorted({pkg for tool, pkg in DEBIAN_TOOLS.items()
                      if shutil.which(tool) is None})
    if not missing or os.environ.get("RUN_PY_NO_APT"):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        say("functional tests need %s (not installed; not root or no "
            "apt-get): they will skip, or fail under CI=true"
            % " ".join(missing))
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    check(["apt-get", "update", "-qq"], env=env)
    check(["apt-get", "install", "-y", "-qq"] + missing, env=env)


def summary(output):
    """The plain closing line: 'N passed, N failed, N skipped'."""
    counts = {}
    for key in ("Passed", "Failed", "Skipped"):
        match = re.search(r"^ - %s: (\d+)" % key, output, re.M)
        counts[key] = int(match.group(1)) if match else 0
    return "%(Passed)d passed, %(Failed)d failed, %(Skipped)d skipped" % counts


def test(extra):
    install()
    install_debian_tools()
    env = dict(os.environ, OS_STDOUT_CAPTURE="1", OS_STDERR_CAPTURE="1",
               OS_TEST_TIMEOUT=os.environ.get("OS_TEST_TIMEOUT", "600"),
               PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    cmd = [os.path.join(BIN, "stestr"), "run"] + extra
    say("$ " + " ".join(cmd))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    rc = proc.wait()
    print(summary("".join(lines)))
    return rc


def demo(extra):
    install()
    cmd = [os.path.join(BIN, "xenapi-resign"), "demo"] + extra
    say("$ " + " ".join(cmd))
    return subprocess.call(cmd, cwd=ROOT)


def main(argv):
    if not argv or argv[0] not in ("demo", "test"):
        sys.exit(__doc__)
    return {"demo": demo, "test": test}[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
