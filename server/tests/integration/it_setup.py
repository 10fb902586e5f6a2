"""Front-end factory shared by the integration test modules: the gateway behind a private
Apache, configured per front end, serving the Django test site."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import it_harness as h

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


def daemon_argv(
    venv: Path, project: Path, sock: Path, *extra: str, workers: int = DAEMON_WORKERS, threads: int = DAEMON_THREADS
) -> list[str]:
    return h.wsgate_argv(
        venv,
        "fastcgi",
        project,
        "--bind",
        f"unix:{sock}",
        "--socket-mode",
        "0660",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--max-body",
        str(MAX_BODY),
        *extra,
    )


def start_daemon(
    venv: Path, project: Path, workdir: Path, *extra: str, workers: int = DAEMON_WORKERS, threads: int = DAEMON_THREADS
) -> tuple[h.Backend, Path]:
    sockdir = h.make_dir(workdir / "sock", owned_by_run_user=True)
    sock = sockdir / "wsgate.sock"
    markdir = h.make_dir(workdir / "marks", owned_by_run_user=True)
    backend = h.Backend(
        daemon_argv(venv, project, sock, *extra, workers=workers, threads=threads),
        workdir / "daemon.log",
        env=h.app_env(project, {"TESTSITE_MARK_DIR": str(markdir)}),
    )
    backend.mark_dir = markdir
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


def make_frontend(
    name: str,
    venv: Path,
    project: Path,
    base: Path,
    tag: str = "",
    daemon_extra: tuple[str, ...] = (),
    workers: int = DAEMON_WORKERS,
    threads: int = DAEMON_THREADS,
) -> Frontend:
    workdir = h.make_dir(base / f"fe-{name}{tag}")
    env = h.app_env(project)
    backend = None
    cleanup = None
    if name in DAEMON_FRONTENDS:
        backend, sock = start_daemon(
            venv,
            project,
            workdir,
            "--mount-prefix",
            h.MOUNT,
            *daemon_extra,
            workers=workers,
            threads=threads,
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
                venv,
                "relay",
                project,
                "--socket",
                str(sock),
                "--idle-timeout",
                "600",
                "--max-body",
                str(MAX_BODY),
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
