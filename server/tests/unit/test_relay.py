import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest
from support import SRC, gone, wait_until, wsgate_command
from test_cgi import cgi_env, split


def backends(marker):
    """pids of processes whose command line mentions marker."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                cmdline = handle.read()
        except OSError:
            continue
        if marker.encode() in cmdline and b"fastcgi" in cmdline:
            found.append(int(entry))
    return found


@pytest.fixture
def relay(tmp_path):
    sock = str(tmp_path / "relay.sock")

    def run(path_info="/x", *args, body=b"", env=None, python_flags=()):
        environ = cgi_env(path_info, "POST" if body else "GET", **({"CONTENT_LENGTH": str(len(body))} if body else {}))
        environ.update(env or {})
        cmd = wsgate_command(
            "relay", "--socket", sock, "--idle-timeout", "5", "--start-timeout", "10", *args, python_flags=python_flags
        )
        return subprocess.run(cmd, input=body, env=environ, capture_output=True, timeout=30)

    run.sock = sock
    yield run
    for pid in backends(str(tmp_path)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def body_of(proc):
    head, body = split(proc.stdout)
    assert head[0] == "Status: 200 OK", (proc.stdout, proc.stderr)
    return json.loads(body)


def test_relay_starts_and_reuses_backend(relay, tmp_path):
    first = relay("/one", body=b"payload")
    data = body_of(first)
    assert data["body_len"] == 7 and data["PATH_INFO"] == "/one"
    assert data["SCRIPT_NAME"] == "/cgi-bin/app.cgi"
    assert os.path.exists(relay.sock)
    second = body_of(relay("/two"))
    assert second["pid"] == data["pid"]
    assert data["multithread"] is True  # served by the daemon, not in-process
    assert len(backends(str(tmp_path))) == 2  # master + one worker


def test_concurrent_first_requests_start_one_backend(relay, tmp_path):
    results = []
    threads = [threading.Thread(target=lambda: results.append(relay("/c"))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    pids = {body_of(r)["pid"] for r in results}
    assert len(results) == 3 and len(pids) == 1
    masters = [pid for pid in backends(str(tmp_path)) if open("/proc/%d/stat" % pid).read().split()[3] == "1"]
    assert len(masters) == 1


def test_backend_errors_reach_the_relay_stderr(relay):
    proc = relay("/boom")
    head, body = split(proc.stdout)
    assert head[0] == "Status: 500 Internal Server Error"
    assert b"Traceback" not in body
    assert b"Traceback" in proc.stderr and b"RuntimeError: boom in the application" in proc.stderr
    complained = relay("/complain")
    assert split(complained.stdout)[1] == b"complained"
    assert b"complaint one\n" in complained.stderr and b"complaint two\n" in complained.stderr


def test_fallback_in_process_when_backend_cannot_start(tmp_path):
    environ = cgi_env("/fallback")
    cmd = wsgate_command("relay", "--socket", str(tmp_path / "missing-dir" / "x.sock"), "--start-timeout", "0.5")
    proc = subprocess.run(cmd, env=environ, capture_output=True, timeout=30)
    data = body_of(proc)
    assert data["run_once"] is True and data["PATH_INFO"] == "/fallback"
    assert (data["front_end"], data["relay_backend"]) == ("relay", "in-process")
    assert b"in-process" in proc.stderr


def test_front_end_of_the_warm_backend(relay):
    data = body_of(relay("/warm"))
    assert (data["front_end"], data["relay_backend"]) == ("relay", "warm")
    assert data["run_once"] is False


def test_fallback_when_backend_dies_at_start(tmp_path):
    proc = subprocess.run(
        wsgate_command("relay", "--socket", str(tmp_path / "b.sock"), "--start-timeout", "5", app="no_such_module:app"),
        env=cgi_env("/"),
        capture_output=True,
        timeout=30,
    )
    assert split(proc.stdout)[0][0] == "Status: 500 Internal Server Error"
    assert b"backend exited during start-up" in proc.stderr


def test_backend_exits_after_idle_timeout(tmp_path):
    sock = str(tmp_path / "idle.sock")
    cmd = wsgate_command("relay", "--socket", sock, "--idle-timeout", "1")
    body_of(subprocess.run(cmd, env=cgi_env("/"), capture_output=True, timeout=30))
    assert backends(str(tmp_path))
    assert wait_until(lambda: not backends(str(tmp_path)))
    assert not os.path.exists(sock)
    # and the next request starts a new one
    body_of(subprocess.run(cmd, env=cgi_env("/"), capture_output=True, timeout=30))
    for pid in backends(str(tmp_path)):
        os.kill(pid, signal.SIGKILL)


HEAVY = (
    "tempfile",
    "threading",
    "urllib.parse",
    "wsgiref",
    "traceback",
    "argparse",
    "logging",
    "subprocess",
    "re",
    "enum",
    "socket",
    "selectors",
    "fcntl",
    "wsgate.cgi",
    "wsgate.environ",
    "apps",
)


def imported_modules(proc):
    return {
        line.rsplit("|", 1)[-1].strip() for line in proc.stderr.decode().splitlines() if line.startswith("import time:")
    }


def test_relay_imports_stay_light(relay):
    relay("/warm")  # make sure the backend runs
    proc = relay("/light", python_flags=("-X", "importtime"))
    assert body_of(proc)["PATH_INFO"] == "/light"
    imported = imported_modules(proc)
    assert "wsgate.relay" in imported
    assert not imported.intersection(HEAVY), imported.intersection(HEAVY)


def relay_script(path, *args):
    """The relay script the README recommends: python -S and wsgate's directory on sys.path."""
    path.write_text(
        "#!%s -S\nimport sys\n\nsys.path.insert(0, %r)\nfrom wsgate.cli import main\n\n"
        "sys.exit(main(%r))\n" % (sys.executable, SRC, ["relay", *args])
    )
    path.chmod(0o755)
    return str(path)


def test_relay_script_skips_site_and_stays_light(relay, tmp_path):
    relay("/warm")
    script = relay_script(tmp_path / "app.cgi", "--app", "apps:application", "--socket", relay.sock)
    env = cgi_env("/scripted", PYTHONPROFILEIMPORTTIME="1")
    proc = subprocess.run([script], env=env, capture_output=True, timeout=30)
    assert body_of(proc)["PATH_INFO"] == "/scripted"
    imported = imported_modules(proc)
    assert "wsgate.relay" in imported and "site" not in imported
    assert not imported.intersection(HEAVY), imported.intersection(HEAVY)
    # Without site, nothing imports os either: the relay's warm path does without it.
    pure_python = {"os", "posixpath", "genericpath", "stat", "struct", "_collections_abc"}
    assert not imported.intersection(pure_python), imported.intersection(pure_python)


def test_relay_script_fallback_gets_site_packages(tmp_path):
    app = tmp_path / "needs_site.py"
    app.write_text(
        "import pytest  # installed in site-packages\n\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'found ' + pytest.__name__.encode()]\n"
    )
    script = relay_script(
        tmp_path / "app.cgi",
        "--app-file",
        str(app),
        "--socket",
        str(tmp_path / "missing-dir" / "x.sock"),
        "--start-timeout",
        "0.5",
    )
    proc = subprocess.run([script], env=cgi_env("/"), capture_output=True, timeout=30)
    assert split(proc.stdout)[1] == b"found pytest", proc.stderr
    assert b"in-process" in proc.stderr


def test_default_socket_is_private(tmp_path):
    env = cgi_env("/")
    env["XDG_RUNTIME_DIR"] = str(tmp_path)
    cmd = [sys.executable, "-m", "wsgate", "relay", "--app", "apps:application", "--idle-timeout", "1"]
    body_of(subprocess.run(cmd, env=env, capture_output=True, timeout=30))
    directory = tmp_path / "wsgate"
    assert directory.stat().st_mode & 0o777 == 0o700
    socks = [p for p in directory.iterdir() if p.suffix == ".sock"]
    assert len(socks) == 1 and socks[0].stat().st_mode & 0o777 == 0o600
    for pid in backends(str(tmp_path)):
        os.kill(pid, signal.SIGKILL)


def _master(sock):
    with open(sock + ".pid") as handle:
        return int(handle.read())


def test_relay_replaces_a_backend_whose_master_was_killed(relay):
    first = body_of(relay("/one"))
    master = _master(relay.sock)
    os.kill(master, signal.SIGKILL)
    second = body_of(relay("/two"))
    assert second["PATH_INFO"] == "/two" and second["relay_backend"] == "warm"
    # the orphaned worker stops, so that a fresh backend holds the socket
    assert wait_until(lambda: gone(first["pid"]))
    third = body_of(relay("/three"))
    assert third["relay_backend"] == "warm" and third["pid"] != first["pid"]
    assert _master(relay.sock) != master and not gone(_master(relay.sock))


class DroppingListener:
    """A socket that accepts connections and closes them unread, like the worker of a dead master used to."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.stopped = threading.Event()
        self.dropped = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            conn.close()
            self.dropped += 1

    def close(self):
        self.stopped.set()
        self.thread.join(5)
        self.sock.close()


def test_relay_replaces_a_backend_that_drops_connections(relay):
    dropping = DroppingListener(relay.sock)
    try:
        proc = relay("/replaced")
        data = body_of(proc)
        assert data["relay_backend"] == "warm" and data["PATH_INFO"] == "/replaced"
        assert dropping.dropped >= 1 and b"is gone; starting a fresh one" in proc.stderr
    finally:
        dropping.close()


def test_relay_runs_in_process_when_the_fresh_backend_does_not_answer(tmp_path):
    app = tmp_path / "slow_backend.py"
    app.write_text(
        "import sys\nimport time\n\n"
        "if 'fastcgi' in sys.argv:\n"
        "    time.sleep(30)  # the backend never gets ready in time\n\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [environ['wsgate.relay_backend'].encode()]\n"
    )
    sock = str(tmp_path / "slow.sock")
    dropping = DroppingListener(sock)
    try:
        cmd = wsgate_command("relay", "--socket", sock, "--start-timeout", "1", "--app-file", str(app), app=None)
        proc = subprocess.run(cmd, env=cgi_env("/"), capture_output=True, timeout=30)
        assert split(proc.stdout)[1] == b"in-process", (proc.stderr, dropping.dropped)
        assert b"starting a fresh one" in proc.stderr and b"running the application in-process" in proc.stderr
    finally:
        dropping.close()
        for pid in backends(str(tmp_path)):
            os.kill(pid, signal.SIGKILL)


def test_body_shorter_than_content_length_is_refused(relay, tmp_path):
    ledger = tmp_path / "ledger"
    env = {"CONTENT_LENGTH": str(1024**3), "QUERY_STRING": str(ledger), "HTTP_X_ID": "short", "REQUEST_METHOD": "POST"}
    relay("/warm")
    proc = relay("/record", env=env, body=b"abcd")
    assert split(proc.stdout)[0][0] == "Status: 400 Bad Request", (proc.stdout, proc.stderr)
    assert b"ended after 4 of 1073741824 bytes" in proc.stderr
    assert not ledger.exists()


def test_in_process_body_shorter_than_content_length_is_refused(tmp_path):
    ledger = tmp_path / "ledger"
    env = cgi_env("/record", "POST", CONTENT_LENGTH=str(1024**3), QUERY_STRING=str(ledger), HTTP_X_ID="short")
    cmd = wsgate_command("relay", "--socket", str(tmp_path / "missing-dir" / "x.sock"), "--start-timeout", "0.5")
    proc = subprocess.run(cmd, input=b"abcd", env=env, capture_output=True, timeout=30)
    assert split(proc.stdout)[0][0] == "Status: 400 Bad Request"
    assert not ledger.exists()


def test_backend_pidfile_for_reload_and_stop(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    sock = str(run_dir / "relay.sock")
    cmd = wsgate_command("relay", "--socket", sock, "--workers", "2")

    def relayed():
        return body_of(subprocess.run(cmd, env=cgi_env("/"), capture_output=True, timeout=30))

    try:
        old_worker = relayed()["pid"]
        master = _master(sock)
        assert master in backends(str(tmp_path))
        with open(sock + ".pid") as handle:  # locked while the master runs
            with pytest.raises(OSError):
                fcntl.lockf(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        os.kill(master, signal.SIGHUP)
        assert wait_until(lambda: gone(old_worker))
        assert relayed()["pid"] != old_worker and _master(sock) == master
        os.kill(master, signal.SIGTERM)
        assert wait_until(lambda: gone(master))
        assert not os.path.exists(sock) and not os.path.exists(sock + ".pid")
    finally:
        for pid in backends(str(tmp_path)):
            os.kill(pid, signal.SIGKILL)
