"""The sample app's own tests on Python 3.8 with Django 4.2 and pysqlite3.

This is the stack CentOS 7 gets with Software Collections' rh-python38:
requirements.txt selects Django 4.2 and pysqlite3-binary there, and the
system's SQLite (3.7.17) is too old for Django 4.2. Here the system's SQLite
is made to report 3.7.17, so the settings must switch to pysqlite3 and every
view, migration and deploy check runs on it.

The virtualenv is built once per requirements.txt content under
.cache/sample-app/ (that first run needs the package index); later runs take
a few seconds. Skipped where pyenv has no Python 3.8.
"""

import fcntl
import glob
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = ROOT / "roles" / "django" / "files" / "sample_app"
PYTHON = sorted(glob.glob("/root/.pyenv/versions/3.8.*/bin/python3.8"))


def virtualenv(python):
    requirements = APP_DIR / "requirements.txt"
    key = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    cache = ROOT / ".cache" / "sample-app"
    cache.mkdir(parents=True, exist_ok=True)
    venv = cache / f"py38-{key}"
    with open(cache / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "ready").exists():
            subprocess.run([python, "-m", "venv", "--clear", str(venv)], check=True, timeout=120)
            subprocess.run(
                [str(venv / "bin" / "pip"), "install", "--quiet", "-r", str(requirements), "pytest<8.4"],
                check=True,
                timeout=600,
            )
            (venv / "ready").touch()
    return venv


@pytest.mark.skipif(not PYTHON, reason="no Python 3.8 under /root/.pyenv")
def test_sample_app_on_python38_django42_with_pysqlite3():
    venv = virtualenv(PYTHON[-1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env["SAMPLE_APP_SYSTEM_SQLITE"] = "3.7.17"
    result = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-rs",
            "-q",
            str(Path(__file__).parent),
            "--ignore",
            __file__,
        ],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    versions = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import django, sys; print(sys.version_info[:2], django.VERSION[:2])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert versions == "(3, 8) (4, 2)"
    # Nothing skipped: the pysqlite3 test ran too.
    assert " skipped" not in output.splitlines()[-1], output
    assert sys.version_info[:2] != (3, 8)
