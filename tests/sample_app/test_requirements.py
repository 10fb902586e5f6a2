"""requirements.txt picks the Django series that supports the Python it runs on."""

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

APP_DIR = Path(__file__).resolve().parents[2] / "roles" / "django" / "files" / "sample_app"

REQUIREMENTS = [
    Requirement(line)
    for line in (APP_DIR / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

# Python -> the Django series it gets: the newest LTS (or current) release
# that supports that Python.
EXPECTED_DJANGO = {
    "3.6": "3.2",
    "3.7": "3.2",
    "3.8": "4.2",
    "3.9": "4.2",
    "3.10": "5.2",
    "3.11": "5.2",
    "3.12": "5.2",
    "3.13": "5.2",
}


def selected(python, machine="x86_64"):
    environment = {
        "python_version": python,
        "python_full_version": python + ".0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": machine,
        "implementation_name": "cpython",
    }
    return [req for req in REQUIREMENTS if req.marker is None or req.marker.evaluate(environment)]


@pytest.mark.parametrize("python", list(EXPECTED_DJANGO))
def test_exactly_one_django_series_per_python(python):
    djangos = [req for req in selected(python) if req.name == "Django"]
    assert len(djangos) == 1, djangos
    series = EXPECTED_DJANGO[python]
    releases = [Version(f"{series}.{patch}") for patch in range(30)]
    assert all(release in djangos[0].specifier for release in releases)
    major, minor = (int(part) for part in series.split("."))
    assert Version(f"{major}.{minor + 1}") not in djangos[0].specifier
    assert Version(f"{major}.{minor - 1}.99") not in djangos[0].specifier


@pytest.mark.parametrize("python", list(EXPECTED_DJANGO))
def test_pysqlite3_only_where_old_pythons_meet_old_sqlite(python):
    names = {req.name for req in selected(python)}
    assert ("pysqlite3-binary" in names) == (Version(python) < Version("3.9"))
    # Its wheels are x86_64 only; elsewhere pip would try to build it.
    assert "pysqlite3-binary" not in {req.name for req in selected(python, machine="aarch64")}


def test_pysqlite3_accepts_the_manylinux1_release_old_pips_can_install():
    (pysqlite3,) = [req for req in REQUIREMENTS if req.name == "pysqlite3-binary"]
    assert Version("0.4.6") in pysqlite3.specifier
    assert Version("0.5.4") in pysqlite3.specifier
