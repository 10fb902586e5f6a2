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
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import it_harness as h  # noqa: E402

UPLOAD_SIZE = 50 * 1024 * 1024
MAX_BODY = 128 * 1024 * 1024
DAEMON_WORKERS = 2
DAEMON_THREADS = 4

FRONTENDS = [
    "proxy_fcgi",  # mod_proxy_fcgi, ProxyPass, a new backend connection per request
    "proxy_fcgi_reuse",  # mod_proxy_fcgi, ProxyPass with enablereuse=on (FCGI_KEEP_CONN)
    "proxy_fcgi_sethandler",  # mod_proxy_fcgi via SetHandler "proxy:unix:...|fcgi://..."
    "fcgid",  # mod_fcgid spawning `wsgate fcgid`
    "cgi",  # mod_cgid running `wsgate cgi` per request
    "relay",  # mod_cgid running `wsgate relay`, which forwards to a warm backend
]
if os.environ.get("WSGATE_IT_FRONTENDS"):
    FRONTENDS = [f for f in FRONTENDS if f in os.environ["WSGATE_IT_FRONTENDS"].split(",")]
DAEMON_FRONTENDS = {"proxy_fcgi", "proxy_fcgi_reuse", "proxy_fcgi_sethandler"}
PER_REQUEST_PROCESS = {"cgi"}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "integration: runs a real Apache httpd in front of the gateway (slow)"
    )


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


def daemon_argv(venv: Path, project: Path, sock: Path, *extra: str,
                workers: int = DAEMON_WORKERS, threads: int = DAEMON_THREADS) -> list[str]:
    return h.wsgate_argv(
        venv, "fastcgi", project,
        "--bind", f"unix:{sock}",
        "--socket-mode", "0660",
        "--workers", str(workers),
        "--threads", str(threads),
        "--max-body", str(MAX_BODY),
        *extra,
    )


def start_daemon(venv: Path, project: Path, workdir: Path, *extra: str,
                 workers: int = DAEMON_WORKERS, threads: int = DAEMON_THREADS) -> tuple[h.Backend, Path]:
    sockdir = h.make_dir(workdir / "sock", owned_by_run_user=True)
    sock = sockdir / "wsgate.sock"
    backend = h.Backend(
        daemon_argv(venv, project, sock, *extra, workers=workers, threads=threads),
        workdir / "daemon.log",
        env=h.app_env(project),
    )
    try:
        h.wait_for_unix_socket(sock, 60, alive=backend.alive)
    except Exception as exc:
        backend.stop()
        raise RuntimeError(f"daemon did not start: {exc}\n{backend.log()}") from exc
    return backend, sock


@dataclass
class Frontend:
    name: str
    apache: h.Apache
    workdir: Path
    backend: h.Backend | None = None
    cleanup_cmdline: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.apache.port

    def request(self, method: str, path: str, **kw) -> h.Response:
        return h.request(self.port, method, h.MOUNT + path, **kw)

    def diagnostics(self) -> str:
        out = [f"--- apache error log ({self.name}) ---", self.apache.read_error_log()[-4000:]]
        if self.backend is not None:
            out += ["--- backend log ---", self.backend.log()[-4000:]]
        return "\n".join(out)

    def stop(self) -> None:
        self.apache.stop()
        if self.backend is not None:
            self.backend.stop()
        if self.cleanup_cmdline:
            h.kill_pids(h.pids_with_cmdline(self.cleanup_cmdline))


def make_frontend(name: str, venv: Path, project: Path, base: Path, tag: str = "",
                  daemon_extra: tuple[str, ...] = (), workers: int = DAEMON_WORKERS,
                  threads: int = DAEMON_THREADS) -> Frontend:
    workdir = h.make_dir(base / f"fe-{name}{tag}")
    env = h.app_env(project)
    backend = None
    cleanup = None
    if name in DAEMON_FRONTENDS:
        backend, sock = start_daemon(
            venv, project, workdir, "--mount-prefix", h.MOUNT, *daemon_extra,
            workers=workers, threads=threads,
        )
        variant = "sethandler" if name.endswith("sethandler") else "proxypass"
        modules, body = h.conf_proxy_fcgi(sock, variant=variant, reuse=name.endswith("reuse"))
    elif name == "fcgid":
        cgidir = h.make_dir(workdir / "cgi-bin")
        wrapper = h.write_wrapper(
            cgidir / "app.fcgi",
            h.wsgate_argv(venv, "fcgid", project, "--max-body", str(MAX_BODY)),
            env,
        )
        ipc = h.make_dir(workdir / "fcgid", owned_by_run_user=True)
        modules, body = h.conf_fcgid(wrapper, ipc)
    elif name == "cgi":
        cgidir = h.make_dir(workdir / "cgi-bin")
        script = h.write_wrapper(
            cgidir / "app.cgi",
            h.wsgate_argv(venv, "cgi", project, "--max-body", str(MAX_BODY)),
            env,
        )
        modules, body = h.conf_cgid(script)
    elif name == "relay":
        cgidir = h.make_dir(workdir / "cgi-bin")
        relaydir = h.make_dir(workdir / "relay", owned_by_run_user=True)
        sock = relaydir / "relay.sock"
        script = h.write_wrapper(
            cgidir / "relay.cgi",
            h.wsgate_argv(
                venv, "relay", project,
                "--socket", str(sock),
                "--idle-timeout", "600",
                "--max-body", str(MAX_BODY),
            ),
            env,
        )
        modules, body = h.conf_cgid(script)
        cleanup = str(sock)
    else:
        raise ValueError(name)
    apache = h.Apache(workdir / "apache", body, modules)
    fe = Frontend(name, apache, workdir, backend=backend, cleanup_cmdline=cleanup)
    try:
        apache.start()
    except Exception:
        fe.stop()
        raise
    return fe


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
