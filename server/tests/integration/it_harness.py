"""Machinery shared by the integration tests and the benchmark (standard library only).

It provides:

* ``ensure_system_packages``: installs Apache, mod_fcgid and libfcgi's ``cgi-fcgi`` with apt when
  they are missing (CI starts from a fresh Debian machine, as root);
* ``build_venv``: a virtualenv made from ``/usr/bin/python3`` (the interpreter mod_wsgi embeds)
  holding Django and the gateway installed from ``server/``, cached and rebuilt only when the
  requirements or the gateway sources change;
* ``Apache``: a private Apache 2.4 (event MPM) with its own ServerRoot, pid file, error log and
  port on 127.0.0.1, whose workers run as ``www-data``; plus config snippets per front end
  (mod_proxy_fcgi, mod_fcgid, mod_cgid, mod_wsgi daemon mode);
* process helpers: start a backend as ``www-data``, find children, read RSS from /proc.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Callable

SERVER_DIR = Path(__file__).resolve().parents[2]  # .../server
DJANGO_PROJECT_SRC = SERVER_DIR / "tests" / "django_project"
APACHE_BIN_CANDIDATES = ("/usr/sbin/apache2", "/usr/local/apache2/bin/httpd", "/usr/sbin/httpd")
APACHE_MODULES = Path("/usr/lib/apache2/modules")
SYSTEM_PYTHON = "/usr/bin/python3"
RUN_USER = "www-data"
APP_SPEC = "testsite.wsgi:application"
MOUNT = "/app"

# ttl= of a ProxyPass with enablereuse=on: Apache uses no kept connection idle this long
# (seconds), so a gateway may close one idle for longer (wsgate's --keep-timeout, above it).
REUSE_TTL = 5

# Modules every generated config loads, and the extra ones each front end needs.
BASE_MODULES = ("mpm_event", "authz_core", "mime", "alias", "env", "log_config", "unixd")
BUILTIN_MODULES = {"unixd", "log_config", "so", "core", "http"}


# --------------------------------------------------------------------------- machine set-up


def apache_binary() -> str | None:
    for cand in APACHE_BIN_CANDIDATES:
        if os.access(cand, os.X_OK):
            return cand
    return shutil.which("apache2") or shutil.which("httpd")


def _apt_install(packages: list[str]) -> None:
    if os.geteuid() != 0:
        raise RuntimeError(f"missing packages {packages} and not root, cannot apt-get install them")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", *packages],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def ensure_system_packages(wsgi: bool = False, wrk: bool = False) -> None:
    """Install apache2, mod_fcgid and cgi-fcgi (and optionally mod_wsgi and wrk) when absent."""
    missing: list[str] = []
    need_apache = apache_binary() is None or not all(
        (APACHE_MODULES / f"mod_{m}.so").exists()
        for m in ("mpm_event", "cgid", "proxy", "proxy_fcgi", "authz_core", "mime", "alias", "env")
    )
    if need_apache:
        missing.append("apache2")
    if not (APACHE_MODULES / "mod_fcgid.so").exists():
        missing.append("libapache2-mod-fcgid")
    if shutil.which("cgi-fcgi") is None:
        missing.append("libfcgi-bin")
    if wsgi and not (APACHE_MODULES / "mod_wsgi.so").exists():
        missing.append("libapache2-mod-wsgi-py3")
    if wrk and shutil.which("wrk") is None:
        missing.append("wrk")
    if not os.path.exists(SYSTEM_PYTHON):
        missing.append("python3")
    if missing:
        _apt_install(missing + (["python3-venv"] if "python3" in missing else []))
    # python3 -m venv needs ensurepip, which Debian ships separately.
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import ensurepip, venv"], capture_output=True)
    if probe.returncode != 0:
        _apt_install(["python3-venv"])
    try:
        pwd.getpwnam(RUN_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", RUN_USER], check=True)


def run_ids() -> tuple[int, int]:
    entry = pwd.getpwnam(RUN_USER)
    return entry.pw_uid, entry.pw_gid


def _world_traversable(path: Path) -> bool:
    for part in [path, *path.parents]:
        try:
            mode = part.stat().st_mode
        except FileNotFoundError:
            continue
        if not mode & stat.S_IXOTH:
            return False
    return True


def cache_root() -> Path:
    """Where venvs are cached: $WSGATE_IT_CACHE, else <repo>/.cache/wsgate-it when the
    unprivileged user can reach it, else /var/tmp/wsgate-it-cache."""
    env = os.environ.get("WSGATE_IT_CACHE")
    if env:
        root = Path(env)
    else:
        repo = SERVER_DIR.parent
        root = repo / ".cache" / "wsgate-it"
        if not _world_traversable(repo):
            root = Path("/var/tmp/wsgate-it-cache")
    root.mkdir(parents=True, exist_ok=True)
    for part in [root, *root.parents]:
        if part == Path("/"):
            break
        if part.stat().st_uid == os.geteuid():
            part.chmod(part.stat().st_mode | 0o755)
        if part == SERVER_DIR.parent:
            break
    return root


def gateway_present() -> bool:
    return (SERVER_DIR / "pyproject.toml").exists() and (SERVER_DIR / "src" / "wsgate").is_dir()


def _gateway_fingerprint() -> str:
    h = hashlib.sha256()
    files = [SERVER_DIR / "pyproject.toml"]
    for extra in ("setup.cfg", "setup.py", "README.md", "LICENSE"):
        if (SERVER_DIR / extra).exists():
            files.append(SERVER_DIR / extra)
    files += sorted(p for p in (SERVER_DIR / "src").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for p in files:
        h.update(str(p.relative_to(SERVER_DIR)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _pip(venv: Path, *args: str, log: Path | None = None) -> None:
    cmd = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", *args]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if log is not None:
        with open(log, "a") as fh:
            fh.write(f"$ {shlex.join(cmd)}\n{res.stdout}\n{res.stderr}\n")
    if res.returncode != 0:
        raise RuntimeError(f"pip failed: {shlex.join(cmd)}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")


def build_venv(path: Path, requirements: Iterable[str], with_gateway: bool = True) -> Path:
    """Create (or refresh) a venv from /usr/bin/python3 with ``requirements`` and the gateway."""
    requirements = list(requirements)
    stamp_file = path / ".wsgate-it-stamp.json"
    log = path.parent / (path.name + ".pip.log")
    pyver = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print(sys.version)"], capture_output=True, text=True
    ).stdout.strip()
    stamp: dict = {}
    if stamp_file.exists():
        try:
            stamp = json.loads(stamp_file.read_text())
        except ValueError:
            stamp = {}
    if stamp.get("python") != pyver or not (path / "bin" / "python").exists():
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(path)], check=True)
        stamp = {"python": pyver}
    if stamp.get("requirements") != requirements:
        if requirements:
            _pip(path, "install", "-q", *requirements, log=log)
        stamp["requirements"] = requirements
        stamp_file.write_text(json.dumps(stamp))
    if with_gateway:
        if not gateway_present():
            raise RuntimeError(f"the gateway is not there yet ({SERVER_DIR}/pyproject.toml, src/wsgate)")
        fp = _gateway_fingerprint()
        if stamp.get("gateway") != fp or not (path / "bin" / "wsgate").exists():
            # Build from a copy so nothing is written into the source tree.
            with tempfile.TemporaryDirectory(prefix="wsgate-build-") as tmp:
                src = Path(tmp) / "server"
                src.mkdir()
                for item in SERVER_DIR.iterdir():
                    if item.is_file():
                        shutil.copy2(item, src / item.name)
                shutil.copytree(
                    SERVER_DIR / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
                )
                _pip(path, "install", "-q", str(src), log=log)
                _pip(path, "install", "-q", "--force-reinstall", "--no-deps", str(src), log=log)
            stamp["gateway"] = fp
            stamp_file.write_text(json.dumps(stamp))
    subprocess.run(["chmod", "-R", "a+rX", str(path)], check=True)
    return path


# --------------------------------------------------------------------------- directories


def make_base(prefix: str = "wsgate-it-") -> Path:
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    base.chmod(0o755)
    return base


def make_dir(path: Path, owned_by_run_user: bool = False, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    if owned_by_run_user:
        uid, gid = run_ids()
        os.chown(path, uid, gid)
    return path


def prepare_project(base: Path, venv: Path) -> Path:
    """Copy the Django test site somewhere the unprivileged user can read and byte-compile it."""
    dest = base / "django_project"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(DJANGO_PROJECT_SRC, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([str(venv / "bin" / "python"), "-m", "compileall", "-q", str(dest)], check=True)
    subprocess.run(["chmod", "-R", "a+rX", str(dest)], check=True)
    return dest


def write_wrapper(path: Path, argv: list[str], env: dict[str, str] | None = None) -> Path:
    """A small /bin/sh script that sets ``env`` and execs ``argv``."""
    lines = ["#!/bin/sh"]
    for key, value in (env or {}).items():
        lines.append(f"{key}={shlex.quote(value)}; export {key}")
    lines.append("exec " + shlex.join(argv))
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(project: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {"DJANGO_SETTINGS_MODULE": "testsite.settings"}
    env.update(extra or {})
    return env


def wsgate_argv(venv: Path, mode: str, project: Path, *extra: str) -> list[str]:
    return [
        str(venv / "bin" / "wsgate"),
        mode,
        "--app",
        APP_SPEC,
        "--python-path",
        str(project),
        *extra,
    ]


# --------------------------------------------------------------------------- processes


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, or None when it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = data[data.rindex(")") + 2 :].split()
    return rest[0], int(rest[1])


def all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def children(pid: int) -> list[int]:
    out = []
    for p in all_pids():
        st = proc_stat(p)
        if st and st[1] == pid and st[0] != "Z":
            out.append(p)
    return out


def descendants(pid: int) -> list[int]:
    table: dict[int, list[int]] = {}
    for p in all_pids():
        st = proc_stat(p)
        if st and st[0] != "Z":
            table.setdefault(st[1], []).append(p)
    out, todo = [], [pid]
    while todo:
        cur = todo.pop()
        for child in table.get(cur, []):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def pids_with_cmdline(fragment: str) -> list[int]:
    me = os.getpid()
    return [p for p in all_pids() if p != me and fragment in cmdline(p)]


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


class RssSampler:
    """Samples the summed RSS of the pids returned by ``pids()`` every ``interval`` seconds."""

    def __init__(self, pids: Callable[[], Iterable[int]], interval: float = 0.25):
        self._pids = pids
        self._interval = interval
        self.peak_kb = 0
        self.peak_count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = set(self._pids())
            total = sum(rss_kb(p) for p in pids)
            if total > self.peak_kb:
                self.peak_kb = total
            self.peak_count = max(self.peak_count, len(pids))
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def kill_pids(pids: Iterable[int], grace: float = 5.0) -> None:
    """SIGTERM then SIGKILL the given pids (which the caller started)."""
    pids = [p for p in pids if proc_stat(p)]
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(proc_stat(p) and proc_stat(p)[0] != "Z" for p in pids):
        time.sleep(0.05)
    for p in pids:
        if proc_stat(p) and proc_stat(p)[0] != "Z":
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Backend:
    """A long-running process (FastCGI daemon, reference peer...) started as the run user."""

    def __init__(
        self,
        argv: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        as_run_user: bool = True,
    ):
        self.argv = argv
        self.log_path = log_path
        full_env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
        }
        full_env.update(env or {})
        self.env = full_env
        kwargs = {}
        if as_run_user and os.geteuid() == 0:
            uid, gid = run_ids()
            kwargs = {"user": uid, "group": gid, "extra_groups": []}
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=str(cwd) if cwd else "/",
            start_new_session=True,
            **kwargs,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def workers(self) -> list[int]:
        return children(self.proc.pid)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        tree = descendants(self.proc.pid)
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        kill_pids(tree, grace=2.0)
        self._log.close()
        return self.proc.returncode


def wait_for_unix_socket(path: Path, timeout: float = 30.0, alive: Callable[[], bool] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last_err: Exception | None = None
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"process died before {path} accepted connections")
        if path.exists():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(path))
                return
            except OSError as exc:
                last_err = exc
            finally:
                s.close()
        time.sleep(0.1)
    raise TimeoutError(f"{path} did not accept connections within {timeout}s ({last_err})")


def wait_for_tcp(port: int, timeout: float = 20.0, alive: Callable[[], bool] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"process died before port {port} opened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"port {port} did not open within {timeout}s")


# --------------------------------------------------------------------------- Apache


def module_lines(modules: Iterable[str]) -> str:
    """LoadModule lines for the modules that are not compiled into the binary."""
    seen, lines = set(), []
    for m in [*BASE_MODULES, *modules]:
        if m in seen:
            continue
        seen.add(m)
        so = APACHE_MODULES / f"mod_{m}.so"
        if m in BUILTIN_MODULES and not so.exists():
            continue
        lines.append(f"LoadModule {m}_module {so}")
    return "\n".join(lines)


class Apache:
    """A private Apache httpd 2.4 with the event MPM, in the foreground under our control."""

    def __init__(
        self,
        root: Path,
        body: str,
        modules: Iterable[str] = (),
        port: int | None = None,
        loglevel: str = "warn",
        threads_per_child: int = 32,
        servers: int = 2,
        timeout: int = 120,
    ):
        self.root = make_dir(root)
        make_dir(root / "htdocs")
        make_dir(root / "run")
        make_dir(root / "logs")
        self.port = port or free_port()
        self.conf_path = root / "httpd.conf"
        self.error_log = root / "logs" / "error.log"
        self.modules = list(modules)
        workers = threads_per_child * servers
        self.conf = f"""# generated for one test / benchmark run
ServerRoot "{root}"
ServerName 127.0.0.1
Listen 127.0.0.1:{self.port}
PidFile "{root}/run/httpd.pid"
DefaultRuntimeDir "{root}/run"
Mutex file:{root}/run default
ErrorLog "{self.error_log}"
LogLevel {loglevel}
{module_lines(self.modules)}
User {RUN_USER}
Group {RUN_USER}
StartServers {servers}
ServerLimit {servers}
ThreadsPerChild {threads_per_child}
ThreadLimit {threads_per_child}
MaxRequestWorkers {workers}
MinSpareThreads {threads_per_child}
MaxSpareThreads {workers}
MaxConnectionsPerChild 0
Timeout {timeout}
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 15
TypesConfig /etc/mime.types
DocumentRoot "{root}/htdocs"
LogFormat "%h \\"%r\\" %>s %b %D" timing
CustomLog "{root}/logs/access.log" timing
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "{root}/htdocs">
    Require all granted
</Directory>

{body}
"""
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> Apache:
        self.conf_path.write_text(self.conf)
        binary = apache_binary()
        if binary is None:
            raise RuntimeError("apache2 binary not found")
        check = subprocess.run([binary, "-t", "-f", str(self.conf_path)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"apache config test failed:\n{check.stderr}\n{self.conf}")
        self._out = open(self.root / "logs" / "stdout.log", "ab")
        self.proc = subprocess.Popen(
            [binary, "-f", str(self.conf_path), "-DFOREGROUND"],
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"},
        )
        try:
            wait_for_tcp(self.port, timeout, alive=lambda: self.proc.poll() is None)
        except Exception as exc:
            raise RuntimeError(f"apache did not start: {exc}\n{self.read_error_log()}") from exc
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def process_tree(self) -> list[int]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [self.proc.pid, *descendants(self.proc.pid)]

    def read_error_log(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_offset(self) -> int:
        try:
            return self.error_log.stat().st_size
        except FileNotFoundError:
            return 0

    def error_log_since(self, offset: int) -> str:
        try:
            with open(self.error_log, "rb") as fh:
                fh.seek(offset)
                return fh.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None:
            return
        tree = self.process_tree()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        kill_pids(tree, grace=2.0)
        self._out.close()

    def __enter__(self) -> Apache:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# Config snippets per front end.  Each returns (modules, body).


def conf_proxy_fcgi(
    sock: Path, mount: str = MOUNT, variant: str = "proxypass", reuse: bool = False, flush: bool = True
) -> tuple[list[str], str]:
    """mod_proxy_fcgi to a daemon on a unix socket (``variant``: proxypass or sethandler)."""
    params = ["retry=0", "timeout=120"]
    if reuse:
        params += ["enablereuse=on", f"ttl={REUSE_TTL}"]
    else:
        params.append("disablereuse=on")
    if flush:
        params.append("flushpackets=on")
    target = f"unix:{sock}|fcgi://localhost/"
    if variant == "proxypass":
        body = f"""ProxyPass "{mount}/" "{target}" {" ".join(params)}
<Location "{mount}/">
    CGIPassAuth On
</Location>
"""
    elif variant == "sethandler":
        body = f"""<Proxy "{target}">
    ProxySet {" ".join(params)}
</Proxy>
<Location "{mount}">
    SetHandler "proxy:{target}"
    CGIPassAuth On
</Location>
"""
    else:
        raise ValueError(variant)
    return ["proxy", "proxy_fcgi"], body


def conf_fcgid(
    wrapper: Path,
    ipc_dir: Path,
    mount: str = MOUNT,
    max_procs: int = 2,
    max_request_len: int = 128 * 1024 * 1024,
    extra: str = "",
) -> tuple[list[str], str]:
    """mod_fcgid spawning ``wrapper`` (a script exec'ing ``wsgate fcgid``), mounted at ``mount``."""
    body = f"""FcgidIPCDir "{ipc_dir}"
FcgidProcessTableFile "{ipc_dir}/fcgid_shm"
FcgidMaxRequestLen {max_request_len}
FcgidMaxRequestInMem 1048576
FcgidOutputBufferSize 0
FcgidIOTimeout 120
FcgidConnectTimeout 20
FcgidBusyTimeout 300
FcgidMinProcessesPerClass 0
FcgidMaxProcessesPerClass {max_procs}
FcgidMaxProcesses {max_procs * 2}
FcgidSpawnScoreUpLimit 100
FcgidPassHeader Authorization
{extra}
Alias "{mount}" "{wrapper}"
<Directory "{wrapper.parent}">
    Options +ExecCGI
    Require all granted
    <Files "{wrapper.name}">
        SetHandler fcgid-script
    </Files>
</Directory>
"""
    return ["fcgid"], body


def conf_cgid(script: Path, mount: str = MOUNT) -> tuple[list[str], str]:
    """mod_cgid running ``script`` per request, mounted at ``mount`` with ScriptAlias."""
    body = f"""ScriptAlias "{mount}" "{script}"
<Directory "{script.parent}">
    Require all granted
    CGIPassAuth On
</Directory>
"""
    return ["cgid"], body


def conf_mod_wsgi(
    venv: Path, project: Path, socket_dir: Path, mount: str = MOUNT, processes: int = 2, threads: int = 4
) -> tuple[list[str], str]:
    wsgi_file = project / "testsite" / "wsgi.py"
    body = f"""WSGISocketPrefix "{socket_dir}/wsgi"
WSGIRestrictEmbedded On
WSGIPassAuthorization On
WSGIDaemonProcess testsite processes={processes} threads={threads} python-home={venv} \\
    python-path={project} lang=C.UTF-8 locale=C.UTF-8 display-name=wsgi-testsite
WSGIProcessGroup testsite
WSGIApplicationGroup %{{GLOBAL}}
WSGIScriptAlias "{mount}" "{wsgi_file}" process-group=testsite application-group=%{{GLOBAL}}
<Directory "{wsgi_file.parent}">
    Require all granted
</Directory>
"""
    return ["wsgi"], body


# --------------------------------------------------------------------------- HTTP client


class Response:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:300]!r}>"


def request(
    port: int,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 120.0,
    conn: http.client.HTTPConnection | None = None,
) -> Response:
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, target, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return Response(r.status, r.getheaders(), data)
    finally:
        if own:
            c.close()
