"""Configure the sample Django app for in-process tests.

The environment is set up before ``django.setup()`` the same way the
deployment does it: through ``DJANGO_*`` environment variables. The
database, media and static roots live in a temporary directory.
"""

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

APP_DIR = Path(__file__).resolve().parents[2] / "roles" / "django" / "files" / "sample_app"

_tmpdir = None


def pytest_configure(config):
    global _tmpdir
    _tmpdir = Path(tempfile.mkdtemp(prefix="sample-app-tests-"))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "sampleapp.settings",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "testserver, localhost",
            "DJANGO_DEBUG": "0",
            "DJANGO_DB_PATH": str(_tmpdir / "db.sqlite3"),
            "DJANGO_MEDIA_ROOT": str(_tmpdir / "media"),
            "DJANGO_STATIC_ROOT": str(_tmpdir / "static"),
        }
    )
    for name in ("DJANGO_SECURE_SSL", "DJANGO_STATIC_URL", "DJANGO_MEDIA_URL", "DJANGO_CSRF_TRUSTED_ORIGINS"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(APP_DIR))
    fake_system_sqlite(os.environ.get("SAMPLE_APP_SYSTEM_SQLITE"))

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)


def fake_system_sqlite(version):
    """Make the stdlib sqlite3 report an older SQLite, e.g. CentOS 7's 3.7.17.

    The settings then decide as they would on that system. Set through
    SAMPLE_APP_SYSTEM_SQLITE by test_other_pythons.py.
    """
    if not version:
        return
    import sqlite3
    import sqlite3.dbapi2

    for module in (sqlite3, sqlite3.dbapi2):
        module.sqlite_version = version
        module.sqlite_version_info = tuple(int(part) for part in version.split("."))


def pytest_unconfigure(config):
    if _tmpdir is not None:
        shutil.rmtree(_tmpdir, ignore_errors=True)


@pytest.fixture
def app_dir():
    return APP_DIR


@pytest.fixture
def run_app_python():
    """Run Python code in a fresh process with only the given DJANGO_* vars
    and DATABASE_URL."""

    def run(code, **django_env):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_") and k != "DATABASE_URL"}
        env["DJANGO_SETTINGS_MODULE"] = "sampleapp.settings"
        env.update(django_env)
        return subprocess.run(  # noqa: UP022
            [sys.executable, "-c", code],
            check=False,
            cwd=APP_DIR,
            env=env,
            # Not capture_output/text: the app's tests also run on Python 3.6.
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,  # noqa: UP021
            timeout=60,
        )

    return run
