import json
import os
import signal
import socket
import threading
import time

import pytest
from fcgiclient import Client, cgi_params, request
from support import PATIENCE, gone, wait_until

from wsgate import protocol as p


def info(reply):
    assert reply.status == 200, reply.stdout
    return json.loads(reply.body)


@pytest.fixture
def server(daemon):
    return daemon("--workers", "1", "--threads", "4", "--max-body", "3M")


def test_get_and_post_through_validator(server):
    reply = request(server.path, "/hello?x=1")
    assert reply.end == (0, p.REQUEST_COMPLETE)
    data = info(reply)
    # mod_proxy_fcgi ProxyPass style: the whole path in SCRIPT_NAME, no PATH_INFO
    assert (data["SCRIPT_NAME"], data["PATH_INFO"]) == ("", "/hello")
    assert data["QUERY_STRING"] == "x=1"
    assert data["multithread"] is True and data["run_once"] is False
    body = b"a=1&b=" + bytes(range(256)) * 10
    data = info(request(server.path, "/post", "POST", body))
    assert data["body_len"] == len(body) and data["CONTENT_LENGTH"] == str(len(body))


def test_path_info_given_is_kept_and_script_name_follows_public_url(server):
    env = {"SCRIPT_NAME": "/app.fcgi", "PATH_INFO": "/foo", "REQUEST_URI": "/foo"}
    data = info(request(server.path, "/foo", extra=env))
    assert (data["SCRIPT_NAME"], data["PATH_INFO"]) == ("", "/foo")
    env = {"SCRIPT_NAME": "/app.fcgi", "PATH_INFO": "/foo", "REQUEST_URI": "/app.fcgi/foo"}
    data = info(request(server.path, "/app.fcgi/foo", extra=env))
    assert (data["SCRIPT_NAME"], data["PATH_INFO"]) == ("/app.fcgi", "/foo")


def test_mount_prefix_decodes_request_uri(daemon):
    d = daemon("--workers", "1", "--mount-prefix", "/app/")
    extra = {"SCRIPT_NAME": "/app/caf\xc3\xa9 x", "REQUEST_URI": "/app/caf%C3%A9%20x?q=1"}
    data = info(request(d.path, "/app/caf%C3%A9%20x?q=1", extra=extra))
    assert data["SCRIPT_NAME"] == "/app"
    assert data["PATH_INFO"] == "/caf\xc3\xa9 x"  # UTF-8 bytes carried as latin-1
    data = info(request(d.path, "/app", extra={"SCRIPT_NAME": "/app"}))
    assert (data["SCRIPT_NAME"], data["PATH_INFO"]) == ("/app", "")


def test_https_and_authorization(server):
    data = info(request(server.path, "/", extra={"HTTPS": "on", "HTTP_AUTHORIZATION": "Basic dTpw"}))
    assert data["url_scheme"] == "https"
    assert data["HTTP_AUTHORIZATION"] == "Basic dTpw"
    data = info(request(server.path, "/", extra={"REQUEST_SCHEME": "https"}))
    assert data["url_scheme"] == "https"


def test_keep_conn_and_close(server):
    client = Client(server.path)
    pids = {info(client.request("/k%d" % i, keep_conn=True))["pid"] for i in range(3)}
    assert len(pids) == 1
    assert not client.at_eof(0.3)
    reply = client.request("/last", keep_conn=False)
    assert reply.end == (0, p.REQUEST_COMPLETE)
    assert client.at_eof()
    client.close()


def test_params_split_across_records(server):
    client = Client(server.path)
    env = cgi_params("/split")
    env["HTTP_X_LONG"] = "v" * 300
    env["HTTP_AUTHORIZATION"] = "Bearer " + "t" * 200
    client.begin()
    client.params(env, split=5)
    client.stdin(b"")
    data = info(client.reply())
    assert data["HTTP_AUTHORIZATION"] == env["HTTP_AUTHORIZATION"]
    assert data["PATH_INFO"] == "/split"


def test_get_values(server):
    client = Client(server.path)
    query = p.encode_pairs(
        [(b"FCGI_MAX_CONNS", b""), (b"FCGI_MAX_REQS", b""), (b"FCGI_MPXS_CONNS", b""), (b"UNKNOWN_NAME", b"")]
    )
    client.send(p.encode_record(p.GET_VALUES, 0, query))
    rec = client.next_record()
    assert rec.type == p.GET_VALUES_RESULT and rec.request_id == 0
    values = p.decode_pairs(rec.content)
    assert values == {b"FCGI_MAX_CONNS": b"36", b"FCGI_MAX_REQS": b"4", b"FCGI_MPXS_CONNS": b"0"}


def test_unknown_type_and_role_and_mpx(server):
    client = Client(server.path)
    client.send(p.encode_record(42, 0, b"x"))
    rec = client.next_record()
    assert (rec.type, rec.content[0]) == (p.UNKNOWN_TYPE, 42)
    client.begin(1, keep_conn=True, role=p.AUTHORIZER)
    rec = client.next_record()
    assert rec.type == p.END_REQUEST and p.END_BODY.unpack(rec.content)[1] == p.UNKNOWN_ROLE
    client.begin(1, keep_conn=True)
    client.begin(2, keep_conn=True)
    rec = client.next_record()
    assert (rec.type, rec.request_id) == (p.END_REQUEST, 2)
    assert p.END_BODY.unpack(rec.content)[1] == p.CANT_MPX_CONN
    client.params(cgi_params("/after-mpx"))
    client.stdin(b"")
    assert info(client.reply(1))["PATH_INFO"] == "/after-mpx"


def test_abort_request_stops_app_and_closes_iterable(server, tmp_path):
    marker = tmp_path / "closed-abort"
    client = Client(server.path)
    client.begin(1, keep_conn=True)
    client.params(cgi_params("/stream?" + str(marker)))
    client.stdin(b"")
    first = client.next_record()
    assert first.type == p.STDOUT and b"chunk 0" in first.content
    client.send(p.encode_record(p.ABORT_REQUEST, 1))
    started = time.monotonic()
    reply = client.reply(1)
    assert reply.end is not None
    assert time.monotonic() - started < 2
    assert b"chunk 150" not in reply.stdout
    assert wait_until(marker.exists)
    # the connection stays usable after an aborted request
    assert info(client.request("/next", keep_conn=True))["PATH_INFO"] == "/next"


def test_client_eof_stops_app(server, tmp_path):
    marker = tmp_path / "closed-eof"
    client = Client(server.path)
    client.begin(1)
    client.params(cgi_params("/stream?" + str(marker)))
    client.stdin(b"")
    assert client.next_record().type == p.STDOUT
    client.close()
    assert wait_until(marker.exists)


def test_body_without_content_length_is_spooled(server):
    body = os.urandom(2 * 1024 * 1024 + 17)
    data = info(request(server.path, "/chunked", "POST", body, content_length=False))
    assert data["CONTENT_LENGTH"] == str(len(body))
    assert data["body_len"] == len(body)


def test_body_too_large(server):
    body = b"x" * (3 * 1024 * 1024 + 1)
    client = Client(server.path)
    reply = client.request("/big", "POST", body, keep_conn=True)
    assert reply.status == 413 and reply.end[0] == 413
    reply = client.request("/big2", "POST", body, keep_conn=True, content_length=False)
    assert reply.status == 413
    assert info(client.request("/ok", keep_conn=True))["PATH_INFO"] == "/ok"


def test_params_too_large(server):
    reply = request(server.path, "/", extra={"HTTP_COOKIE": "c" * (1024 * 1024 + 10)})
    assert reply.status == 431 and reply.end is not None


def test_large_response_records(server):
    client = Client(server.path)
    client.begin()
    client.params(cgi_params("/big"))
    client.stdin(b"")
    reply = client.reply()
    assert reply.body == b"x" * 200000
    assert max(len(r.content) for r in reply.records) <= 65535


def test_app_error_is_500_without_traceback(server):
    reply = request(server.path, "/boom")
    assert reply.status == 500 and reply.end == (1, p.REQUEST_COMPLETE)
    assert b"Traceback" not in reply.stdout and b"boom" not in reply.stdout
    assert wait_until(lambda: "RuntimeError: boom in the application" in server.log)
    assert "[wsgate:error]" in server.log


def _stderr_then_end(reply):
    """STDERR records of the reply, checking the stream is closed before END_REQUEST."""
    types = [rec.type for rec in reply.records]
    contents = [rec.content for rec in reply.records if rec.type == p.STDERR]
    assert contents and contents[-1] == b""
    assert types.index(p.END_REQUEST) > max(i for i, t in enumerate(types) if t == p.STDERR)
    return contents[:-1]


def test_app_traceback_goes_to_the_web_server_as_stderr(server):
    reply = request(server.path, "/boom")
    assert reply.status == 500
    lines = _stderr_then_end(reply)
    # one record per line, so that Apache logs each as an entry of its own
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    text = reply.stderr.decode()
    assert "GET /boom: application error" in text and "Traceback" in text
    assert "RuntimeError: boom in the application" in text
    assert "[wsgate:error]" in text
    # the daemon's own log keeps it too
    assert wait_until(lambda: "RuntimeError: boom in the application" in server.log)


def test_wsgi_errors_go_to_the_web_server_as_stderr(server):
    client = Client(server.path)
    reply = client.request("/complain", keep_conn=True)
    assert reply.status == 200 and reply.body == b"complained"
    _stderr_then_end(reply)
    assert b"complaint one\n" in reply.stderr and b"complaint two\n" in reply.stderr
    assert wait_until(lambda: "complaint two" in server.log)
    # a clean request on the same connection carries no STDERR at all
    reply = client.request("/", keep_conn=True)
    assert reply.status == 200
    assert not [rec for rec in reply.records if rec.type == p.STDERR]
    client.close()


def test_error_after_headers_sent(server):
    reply = request(server.path, "/late-boom")
    assert reply.status == 200
    assert reply.body == b"first part"
    assert reply.stdout.count(b"Status:") == 1
    assert reply.end is not None
    assert wait_until(lambda: "truncated" in server.log)


def test_overload_is_answered(daemon):
    d = daemon("--workers", "1", "--threads", "1", "--queue", "1")
    results = []

    def slow():
        results.append(request(d.path, "/sleep", extra={"QUERY_STRING": "1"}))

    threads = [threading.Thread(target=slow) for _ in range(4)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join(10)
    statuses = sorted(r.status for r in results)
    assert len(results) == 4 and all(r.end is not None for r in results)
    assert 503 in statuses and 200 in statuses
    overloaded = [r for r in results if r.status == 503]
    assert all(r.end[1] == p.OVERLOADED for r in overloaded)
    assert all(r.header("Retry-After") for r in overloaded)


def test_max_requests_counts_requests_not_connections(daemon):
    d = daemon("--workers", "1", "--max-requests", "3")
    client = Client(d.path)
    pids = [info(client.request("/r%d" % i, keep_conn=True))["pid"] for i in range(3)]
    assert len(set(pids)) == 1
    # recycled between requests: the kept connection goes on with the new worker
    new_pid = info(client.request("/r3", keep_conn=True))["pid"]
    client.close()
    assert new_pid != pids[0]
    assert info(request(d.path, "/after"))["pid"] == new_pid


def test_graceful_stop_finishes_inflight(daemon):
    d = daemon("--workers", "1")
    result = []
    t = threading.Thread(target=lambda: result.append(request(d.path, "/sleep", extra={"QUERY_STRING": "1"})))
    t.start()
    time.sleep(0.3)
    d.proc.send_signal(signal.SIGTERM)
    t.join(10)
    assert result and result[0].status == 200 and result[0].body == b"slept"
    assert d.proc.wait(PATIENCE) == 0
    assert not os.path.exists(d.path)


def test_sighup_reload_replaces_workers(daemon):
    d = daemon("--workers", "2")
    old = {info(request(d.path, "/"))["pid"] for _ in range(6)}
    result = []
    t = threading.Thread(target=lambda: result.append(request(d.path, "/sleep", extra={"QUERY_STRING": "1"})))
    t.start()
    time.sleep(0.2)
    d.proc.send_signal(signal.SIGHUP)
    t.join(10)
    assert result and result[0].status == 200  # in-flight request survived the reload
    assert wait_until(lambda: "reload complete" in d.log)
    assert wait_until(lambda: not any(os.path.exists("/proc/%d" % pid) for pid in old))
    new = {info(request(d.path, "/"))["pid"] for _ in range(6)}
    assert new and not new & old
    assert d.proc.poll() is None


def test_sighup_reload_follows_a_chdir_link(daemon, tmp_path):
    """A deploy points a link at a new release and reloads: the new workers
    start in the directory the link names now."""
    first, second = tmp_path / "release-1", tmp_path / "release-2"
    first.mkdir()
    second.mkdir()
    link = tmp_path / "current"
    link.symlink_to(first)
    d = daemon("--workers", "1", "--chdir", str(link))
    assert info(request(d.path, "/"))["cwd"] == str(first)
    new_link = tmp_path / "current.new"
    new_link.symlink_to(second)
    os.replace(new_link, link)
    d.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "reload complete" in d.log)
    assert wait_until(lambda: info(request(d.path, "/"))["cwd"] == str(second))


def test_killed_worker_is_replaced(daemon):
    d = daemon("--workers", "1")
    pid = info(request(d.path, "/"))["pid"]
    os.kill(pid, signal.SIGKILL)
    new_pid = wait_until(lambda: _try_pid(d.path))
    assert new_pid and new_pid != pid
    assert "died" in d.log


def _try_pid(path):
    try:
        return info(request(path, "/"))["pid"]
    except (OSError, AssertionError):
        return None


def test_request_timeout_with_threads(daemon):
    d = daemon("--workers", "1", "--threads", "2", "--request-timeout", "0.5")
    started = time.monotonic()
    client = Client(d.path)
    slow = client.request("/sleep", extra={"QUERY_STRING": "5"})
    assert time.monotonic() - started < 3
    assert slow.status == 504 and slow.end is not None
    assert b"timed out" in slow.stderr
    pid = wait_until(lambda: _try_pid(d.path))
    assert pid
    assert "timed out" in d.log
    # the worker that had the stuck thread is recycled
    assert wait_until(lambda: "worker stopping (request timeout)" in d.log)


def test_idle_timeout_stops_daemon(daemon):
    d = daemon("--workers", "1", "--idle-timeout", "1")
    assert info(request(d.path, "/"))["PATH_INFO"] == "/"
    assert d.proc.wait(PATIENCE) == 0
    assert not os.path.exists(d.path)


def test_protocol_garbage_closes_connection(server):
    client = Client(server.path)
    client.send(b"\x07" + b"\x00" * 15)
    assert client.at_eof()
    assert info(request(server.path, "/still-fine"))["PATH_INFO"] == "/still-fine"


@pytest.mark.parametrize("allowed,served", [(None, True), ("127.0.0.1", True), ("10.9.9.9", False)])
def test_tcp_bind_and_web_server_addrs(allowed, served):
    import subprocess

    from support import child_env, wsgate_command

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = child_env(**({"FCGI_WEB_SERVER_ADDRS": allowed} if allowed else {}))
    proc = subprocess.Popen(
        wsgate_command("fastcgi", "--bind", "tcp:127.0.0.1:%d" % port, "--workers", "1"),
        env=env,
        stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        client = wait_until(lambda: _tcp_client(port))
        assert client
        if served:
            assert info(client.request("/tcp"))["PATH_INFO"] == "/tcp"
        else:
            assert client.at_eof(PATIENCE)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(5)


def _tcp_client(port):
    try:
        return Client(("127.0.0.1", port))
    except OSError:
        return None


def test_systemd_socket_activation(tmp_path):
    import subprocess
    import sys

    from support import child_env

    path = str(tmp_path / "sd.sock")
    launcher = (
        "import os, socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "s.bind(%r)\n"
        "s.listen(16)\n"
        "os.dup2(s.fileno(), 3)\n"
        "os.set_inheritable(3, True)\n"
        "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()))\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'wsgate', 'fastcgi', '--app',"
        " 'apps:application', '--workers', '1'])\n" % path
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", launcher], env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert wait_until(lambda: _try_pid(path))
        assert info(request(path, "/sd"))["PATH_INFO"] == "/sd"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(PATIENCE) == 0
        assert os.path.exists(path)  # the socket belongs to systemd, not to us
    finally:
        if proc.poll() is None:
            proc.kill()


def test_front_end_is_fastcgi(server):
    data = info(request(server.path, "/"))
    assert (data["front_end"], data["relay_backend"]) == ("fastcgi", None)


def test_front_end_relay_for_the_relay_backend(daemon):
    d = daemon("--workers", "1", "--front-end", "relay")
    data = info(request(d.path, "/"))
    assert (data["front_end"], data["relay_backend"]) == ("relay", "warm")


@pytest.mark.parametrize("declared", [2 * 1024 * 1024, 1024 * 1024 * 1024])
def test_body_shorter_than_content_length_is_refused(daemon, tmp_path, declared):
    d = daemon("--workers", "1")
    ledger = str(tmp_path / "ledger")
    client = Client(d.path)
    client.begin(1, keep_conn=True)
    env = cgi_params("/record?" + ledger, "POST")
    env.update(CONTENT_LENGTH=str(declared), HTTP_X_ID="short")
    client.params(env)
    client.stdin(b"abcd")
    reply = client.reply()
    assert reply.status == 400 and reply.end == (400, p.REQUEST_COMPLETE)
    assert not os.path.exists(ledger)  # the application never ran
    assert wait_until(lambda: "ended after 4 of %d bytes" % declared in d.log)
    # the connection stays usable
    assert info(client.request("/next", keep_conn=True))["PATH_INFO"] == "/next"
    client.close()


def test_body_cut_by_eof_never_reaches_the_app(server, tmp_path):
    ledger = str(tmp_path / "ledger")
    client = Client(server.path)
    client.begin(1)
    env = cgi_params("/record?" + ledger, "POST")
    env.update(CONTENT_LENGTH="100", HTTP_X_ID="cut")
    client.params(env)
    client.stdin(b"abcd", end=False)
    client.close()
    assert info(request(server.path, "/after"))["PATH_INFO"] == "/after"
    assert not os.path.exists(ledger)


def test_pidfile_is_locked_while_the_master_runs_and_removed_at_exit(daemon, tmp_path):
    import fcntl

    pidfile = tmp_path / "master.pid"
    d = daemon("--workers", "2", "--pidfile", str(pidfile))
    assert wait_until(lambda: _try_pid(d.path))
    assert int(pidfile.read_text()) == d.proc.pid
    with open(pidfile) as handle:
        with pytest.raises(OSError):
            fcntl.lockf(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(PATIENCE) == 0
    assert not pidfile.exists()


def test_pidfile_of_a_killed_master_is_left_unlocked(daemon, tmp_path):
    import fcntl

    pidfile = tmp_path / "master.pid"
    d = daemon("--workers", "2", "--pidfile", str(pidfile))
    workers = {info(request(d.path, "/"))["pid"] for _ in range(4)}
    d.proc.kill()
    d.proc.wait()
    # the lock is the master's alone: stale at once, though its workers may still be exiting
    with open(pidfile) as handle:
        fcntl.lockf(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    assert wait_until(lambda: all(gone(pid) for pid in workers))


def _listening(path):
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def test_workers_of_a_killed_master_answer_what_they_accepted_and_stop(daemon):
    d = daemon("--workers", "1")
    worker = info(request(d.path, "/"))["pid"]
    try:
        client = Client(d.path)
        # answered, so the worker has accepted this connection
        client.send(p.encode_record(p.GET_VALUES, 0, p.encode_pairs([(b"FCGI_MPXS_CONNS", b"")])))
        assert client.next_record().type == p.GET_VALUES_RESULT
        d.proc.kill()
        d.proc.wait()
        assert wait_until(lambda: "worker stopping (master went away)" in d.log)
        # it no longer listens: a new master could bind the socket
        assert wait_until(lambda: not _listening(d.path))
        assert info(client.request("/accepted-before"))["PATH_INFO"] == "/accepted-before"
        client.close()
        assert wait_until(lambda: gone(worker))
    finally:
        try:
            os.kill(worker, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_slow_upload_does_not_hold_the_only_thread(daemon):
    d = daemon("--workers", "1", "--threads", "1", "--queue", "1")
    slow = Client(d.path)
    slow.begin(1)
    env = cgi_params("/upload", "POST")
    env["CONTENT_LENGTH"] = "8"
    slow.params(env)
    slow.stdin(b"half", end=False)
    # while the upload waits for its second half, another request is served at once
    started = time.monotonic()
    assert info(request(d.path, "/quick"))["PATH_INFO"] == "/quick"
    assert time.monotonic() - started < 1.0
    slow.stdin(b"more")
    assert info(slow.reply())["body_len"] == 8
    slow.close()
