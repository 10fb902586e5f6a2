"""The settings switch to pysqlite3 only when the system's SQLite is too old.

These run in fresh processes with the project's Python and Django. The
switch itself, with pysqlite3-binary installed, is exercised by
test_other_pythons.py.
"""

import json
import os
import secrets
import sys
import types

import pytest

REPORT = """
import json, sys
import django
{prelude}
django.setup()
from django.conf import settings
from django.db import connection
connection.ensure_connection()
print(json.dumps({{
    "settings_sqlite": settings.SQLITE_VERSION,
    "module": sys.modules["sqlite3"].__name__,
    "backend": connection.Database.__name__,
    "server": connection.Database.sqlite_version,
}}))
"""

FAKE_OLD_SYSTEM_SQLITE = """
import sqlite3, sqlite3.dbapi2
for module in (sqlite3, sqlite3.dbapi2):
    module.sqlite_version, module.sqlite_version_info = "3.7.17", (3, 7, 17)
"""


def run_report(run_app_python, tmp_path, prelude=""):
    return run_app_python(
        REPORT.format(prelude=prelude),
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_DB_PATH=str(tmp_path / "db.sqlite3"),
    )


def test_a_new_enough_system_sqlite_is_kept(run_app_python, tmp_path):
    # The C module: in this process, "sqlite3" may already be pysqlite3.
    import _sqlite3 as sqlite3

    result = run_report(run_app_python, tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {
        "settings_sqlite": sqlite3.sqlite_version,
        "module": "sqlite3",
        "backend": "sqlite3.dbapi2",
        "server": sqlite3.sqlite_version,
    }


def test_a_too_old_system_sqlite_without_pysqlite3_is_reported_by_django(run_app_python, tmp_path):
    hide_pysqlite3 = "sys.modules['pysqlite3'] = None\n"
    result = run_report(run_app_python, tmp_path, prelude=hide_pysqlite3 + FAKE_OLD_SYSTEM_SQLITE)
    assert result.returncode != 0
    # ImproperlyConfigured up to Django 4.1, NotSupportedError since.
    assert "or later is required (found 3.7.17)" in result.stderr


def test_the_minimum_table_covers_the_installed_django():
    import django
    from django.conf import settings

    series = [series for series, _ in settings.SQLITE_MINIMUM]
    assert series == sorted(series, reverse=True)
    assert django.VERSION[:2] >= series[-1]


@pytest.mark.parametrize(
    ("django_version", "system", "swapped"),
    [
        ((5, 2), (3, 40, 1), False),
        ((5, 2), (3, 26, 0), True),
        ((4, 2), (3, 26, 0), False),
        ((4, 2), (3, 7, 17), True),
        ((3, 2), (3, 8, 3), True),
        ((3, 2), (3, 9, 0), False),
    ],
)
def test_the_decision_follows_django_series(monkeypatch, django_version, system, swapped):
    import sqlite3

    from django.conf import settings

    settings_module = sys.modules[settings.SETTINGS_MODULE]
    replacement = types.ModuleType("pysqlite3")
    replacement.dbapi2 = types.ModuleType("pysqlite3.dbapi2")
    replacement.dbapi2.sqlite_version = "3.46.1"
    monkeypatch.setitem(sys.modules, "pysqlite3", replacement)
    monkeypatch.setitem(sys.modules, "pysqlite3.dbapi2", replacement.dbapi2)
    monkeypatch.setitem(sys.modules, "sqlite3", sqlite3)
    monkeypatch.setitem(sys.modules, "sqlite3.dbapi2", sqlite3.dbapi2)
    monkeypatch.setattr(sqlite3, "sqlite_version_info", system)
    monkeypatch.setattr(sqlite3, "sqlite_version", ".".join(map(str, system)))
    monkeypatch.setattr(settings_module.django, "VERSION", (*django_version, 0, "final", 0))

    version = settings_module.use_pysqlite3_if_needed()

    assert (sys.modules["sqlite3"] is replacement) == swapped
    assert version == ("3.46.1" if swapped else ".".join(map(str, system)))


@pytest.mark.skipif(
    not os.environ.get("SAMPLE_APP_SYSTEM_SQLITE"), reason="only where the system's SQLite is made to look old"
)
def test_an_old_system_sqlite_is_replaced_by_pysqlite3():
    from django.conf import settings
    from django.db import connection

    assert sys.modules["sqlite3"].__name__ == "pysqlite3"
    assert connection.Database.__name__ == "pysqlite3.dbapi2"
    assert settings.SQLITE_VERSION == connection.Database.sqlite_version
    assert connection.Database.sqlite_version_info >= (3, 21, 0)
