import json
import signal
import socket
import subprocess
import sys
import threading
import time

from fcgiclient import Client, cgi_params, request
from support import PATIENCE, child_env, wait_until

from wsgate import protocol as p


def start(tmp_path, *args):
    path = str(tmp_path / "fcgid.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(8)
    log = open(tmp_path / "fcgid.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "wsgate", "fcgid", "--app", "apps:application", "--log-level", "info", *args],
        stdin=listener.fileno(),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_env(),
    )
    listener.close()
    log.close()
    return proc, path


def fcgid_params(path_info, query=""):
    env = cgi_params("/a.fcgi" + path_info)
    env.update(SCRIPT_NAME="/a.fcgi", PATH_INFO=path_info, QUERY_STRING=query)
    return env


def fcgid_request(path, path_info, query=""):
    return request(path, "/a.fcgi" + path_info, extra=fcgid_params(path_info, query))


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_requests_one_at_a_time(tmp_path):
    proc, path = start(tmp_path)
    try:
        data = json.loads(
            request(
                path,
                "/a.fcgi/x",
                extra={
                    "SCRIPT_NAME": "/a.fcgi",
                    "PATH_INFO": "/x",
                    "REQUEST_URI": "/a.fcgi/x",
                    "HTTP_AUTHORIZATION": "Basic dTpw",
                },
            ).body
        )
        assert (data["SCRIPT_NAME"], data["PATH_INFO"]) == ("/a.fcgi", "/x")
        assert data["multithread"] is False
        assert data["HTTP_AUTHORIZATION"] == "Basic dTpw"
        # mod_fcgid-style request: no PATH_INFO, script requested directly
        data = json.loads(request(path, "/a.fcgi", extra={"SCRIPT_NAME": "/a.fcgi"}).body)
        assert (data["SCRIPT_NAME"], data["PATH_INFO"]) == ("/a.fcgi", "")
        # a second connection waits while the first request runs
        replies = []
        started = time.monotonic()
        threads = [
            threading.Thread(target=lambda: replies.append(fcgid_request(path, "/sleep", "0.4"))) for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert [r.status for r in replies] == [200, 200]
        assert time.monotonic() - started >= 0.8
        # management records are answered too
        client = Client(path)
        client.send(p.encode_record(p.GET_VALUES, 0, p.encode_pairs([(b"FCGI_MAX_REQS", b"")])))
        rec = client.next_record()
        assert p.decode_pairs(rec.content) == {b"FCGI_MAX_REQS": b"1"}
        client.close()
    finally:
        stop(proc)


def test_max_requests_exit(tmp_path):
    proc, path = start(tmp_path, "--max-requests", "2")
    try:
        assert request(path, "/1").status == 200
        assert request(path, "/2").status == 200
        assert proc.wait(PATIENCE) == 0
    finally:
        stop(proc)


def test_sigterm_when_idle_exits_at_once(tmp_path):
    proc, path = start(tmp_path)
    try:
        assert request(path, "/warm").status == 200
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(PATIENCE) == 0
        assert time.monotonic() - started < 1.5
    finally:
        stop(proc)


def test_sigterm_serves_the_connection_already_waiting(tmp_path):
    # mod_fcgid connected (it had picked this process) before deciding to stop it
    proc, path = start(tmp_path)
    try:
        assert request(path, "/warm").status == 200
        proc.send_signal(signal.SIGSTOP)
        client = Client(path)
        client.begin()
        client.params(fcgid_params("/late"))
        client.stdin(b"")
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGCONT)
        reply = client.reply()
        client.close()
        assert reply.end is not None and reply.status == 200
        assert proc.wait(PATIENCE) == 0
    finally:
        stop(proc)


def test_sigterm_during_request_finishes_it(tmp_path):
    proc, path = start(tmp_path)
    try:
        assert request(path, "/warm").status == 200
        result = []
        t = threading.Thread(target=lambda: result.append(fcgid_request(path, "/sleep", "0.6")))
        t.start()
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        t.join(10)
        assert result[0].status == 200 and result[0].body == b"slept"
        assert proc.wait(PATIENCE) == 0
    finally:
        stop(proc)


def test_abort_and_app_error(tmp_path):
    proc, path = start(tmp_path)
    marker = tmp_path / "closed"
    try:
        client = Client(path)
        client.begin(1)
        client.params(fcgid_params("/stream", str(marker)))
        client.stdin(b"")
        assert client.next_record().type == p.STDOUT
        client.send(p.encode_record(p.ABORT_REQUEST, 1))
        reply = client.reply()
        assert reply.end is not None
        assert wait_until(marker.exists)
        reply = fcgid_request(path, "/boom")
        assert reply.status == 500 and reply.end[0] == 1
        assert b"Traceback" in reply.stderr and b"boom in the application" in reply.stderr
    finally:
        stop(proc)


def test_not_started_by_fcgid(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "wsgate", "fcgid", "--app", "apps:application"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=child_env(),
        timeout=20,
    )
    assert proc.returncode == 2 and b"mod_fcgid" in proc.stderr


def test_front_end_is_fcgid(tmp_path):
    proc, path = start(tmp_path)
    try:
        data = json.loads(fcgid_request(path, "/").body)
        assert (data["front_end"], data["relay_backend"]) == ("fcgid", None)
    finally:
        stop(proc)


def test_body_shorter_than_content_length_is_refused(tmp_path):
    proc, path = start(tmp_path)
    ledger = tmp_path / "ledger"
    try:
        client = Client(path)
        client.begin(1)
        env = fcgid_params("/record", str(ledger))
        env.update(REQUEST_METHOD="POST", CONTENT_LENGTH=str(1024**3), HTTP_X_ID="short")
        client.params(env)
        client.stdin(b"abcd")
        reply = client.reply()
        assert reply.status == 400 and reply.end[0] == 400
        assert not ledger.exists()
    finally:
        stop(proc)
