"""Fixtures of the integration suite: a real Apache 2.4 in front of the gateway serving the
Django test site, one configuration per front end.

Environment knobs:
  WSGATE_IT_CACHE   where the /usr/bin/python3 venv is cached (default <repo>/.cache/wsgate-it)
  WSGATE_IT_KEEP=1  keep the temporary ServerRoots, sockets and logs after the run
  WSGATE_IT_FRONTENDS=cgi,fcgid  only run the front-end tests for these front ends
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import it_harness as h
from it_setup import FRONTENDS, UPLOAD_SIZE, make_frontend


def pytest_configure(config):
    config.addinivalue_line("markers", "integration: runs a real Apache httpd in front of the gateway (slow)")


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def system_ready():
    h.ensure_system_packages()
    return True


@pytest.fixture(scope="session")
def venv(system_ready):
    if not h.gateway_present():
        pytest.fail(f"the gateway sources are missing under {h.SERVER_DIR} (pyproject.toml, src/wsgate)")
    return h.build_venv(h.cache_root() / "it-venv", ["django==5.2.*"])


@pytest.fixture(scope="session")
def itbase():
    base = h.make_base()
    yield base
    if os.environ.get("WSGATE_IT_KEEP") != "1":
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def project(itbase, venv):
    return h.prepare_project(itbase, venv)


@pytest.fixture(scope="session")
def upload_blob():
    data = random.Random(20240601).randbytes(UPLOAD_SIZE)
    return data, hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module", params=FRONTENDS)
def frontend(request, venv, project, itbase):
    fe = make_frontend(request.param, venv, project, itbase)
    yield fe
    fe.stop()


@pytest.fixture(autouse=True)
def _attach_logs(request):
    """Attach Apache's error log and the backend's log to a failing test's report."""
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is None or not rep.failed:
        return
    for name in ("frontend", "fcgi_daemon", "kill_frontend"):
        if name in request.fixturenames:
            obj = request.getfixturevalue(name)
            diag = getattr(obj, "diagnostics", None)
            if diag:
                request.node.add_report_section("call", f"{name} logs", diag())


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
