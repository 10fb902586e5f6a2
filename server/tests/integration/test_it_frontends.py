"""The Django test site served by the gateway behind a real Apache, once per front end:
mod_proxy_fcgi (ProxyPass with and without enablereuse, SetHandler) to `wsgate fastcgi`,
mod_fcgid spawning `wsgate fcgid`, mod_cgid running `wsgate cgi` and `wsgate relay`."""

from __future__ import annotations

import http.client
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlencode

import it_harness as h
import pytest
from it_setup import DAEMON_FRONTENDS, DAEMON_THREADS, DAEMON_WORKERS, PER_REQUEST_PROCESS, UPLOAD_SIZE

AUTH = "Basic dXNlcjpww6Rzcw=="  # user:päss


def test_get_echo(frontend):
    r = frontend.request("GET", "/echo/plain?x=1&y=two", headers={"X-Test": "hello"})
    assert r.status == 200, r
    assert r.header("Content-Type") == "application/json"
    d = r.json()
    assert d["method"] == "GET"
    assert d["script_name"] == h.MOUNT
    assert d["path_info"] == "/echo/plain"
    assert d["path"] == h.MOUNT + "/echo/plain"
    assert d["GET"] == {"x": ["1"], "y": ["two"]}
    assert d["query_string"] == "x=1&y=two"
    assert d["gateway_interface"] == "CGI/1.1"
    assert d["x_test"] == "hello"
    assert d["has_authorization"] is False
    assert d["url_scheme"] == "http"


def test_not_found_is_django_404(frontend):
    r = frontend.request("GET", "/no/such/page")
    assert r.status == 404, r


def test_post_form(frontend):
    fields = [("name", "Zoë"), ("multi", "1"), ("multi", "2"), ("empty", ""), ("sym", "a&b=c")]
    body = urlencode(fields).encode()
    r = frontend.request("POST", "/form/", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200, r
    d = r.json()
    assert d["method"] == "POST"
    assert d["POST"] == {"name": ["Zoë"], "multi": ["1", "2"], "empty": [""], "sym": ["a&b=c"]}


def test_post_body_echo(frontend):
    body = b"\x00binary\xffbody" * 1000
    r = frontend.request("POST", "/echo/body", body=body, headers={"Content-Type": "application/octet-stream"})
    assert r.status == 200, r
    d = r.json()
    assert d["body_length"] == len(body)
    import hashlib

    assert d["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert d["content_length"] == str(len(body))


def test_upload_50mb(frontend, upload_blob):
    data, sha = upload_blob
    started = time.monotonic()
    r = frontend.request(
        "POST", "/upload/", body=data, headers={"Content-Type": "application/octet-stream"}, timeout=180
    )
    elapsed = time.monotonic() - started
    assert r.status == 200, r
    d = r.json()
    assert d["body_length"] == UPLOAD_SIZE
    assert d["body_sha256"] == sha
    assert elapsed < 120


def test_chunked_request_body(frontend):
    """A chunked request body (no Content-Length from the client) must reach Django whole."""
    import hashlib

    parts = [bytes([i % 251]) * 10_000 for i in range(20)]  # 200 kB, beyond Apache's pre-read
    whole = b"".join(parts)
    conn = http.client.HTTPConnection("127.0.0.1", frontend.port, timeout=60)
    try:
        conn.request(
            "POST",
            h.MOUNT + "/echo/chunked",
            body=iter(parts),
            headers={"Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked"},
            encode_chunked=True,
        )
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    r = h.Response(resp.status, resp.getheaders(), raw)
    assert r.status == 200, r
    d = r.json()
    assert d["body_length"] == len(whole), d
    assert d["body_sha256"] == hashlib.sha256(whole).hexdigest()


NON_ASCII_SEGMENTS = ["ünï cödé", "日本語", "emoji-😀", "a+b;c=d"]


def test_non_ascii_path_and_query(frontend):
    path = "/echo/" + "/".join(NON_ASCII_SEGMENTS)
    query = urlencode([("q", "ü日本"), ("amp", "x&y"), ("sp", "a b")])
    r = frontend.request("GET", quote(path, safe="/;=+") + "?" + query)
    assert r.status == 200, r
    d = r.json()
    assert d["path_info"] == path
    assert d["path"] == h.MOUNT + path
    assert d["script_name"] == h.MOUNT
    assert d["GET"] == {"q": ["ü日本"], "amp": ["x&y"], "sp": ["a b"]}
    assert d["query_string"] == query
    # PEP 3333: the raw environ value is the UTF-8 bytes tunnelled as latin-1
    assert d["raw_path_info"] == path.encode("utf-8").decode("latin-1")


def test_percent_encoded_ascii_path(frontend):
    r = frontend.request("GET", "/echo/%61%62c%20d?x=%2F")
    assert r.status == 200, r
    d = r.json()
    assert d["path_info"] == "/echo/abc d"
    assert d["GET"] == {"x": ["/"]}


def test_authorization_header_passed(frontend):
    r = frontend.request("GET", "/echo/auth", headers={"Authorization": AUTH})
    assert r.status == 200, r
    d = r.json()
    assert d["has_authorization"] is True
    assert d["authorization"] == AUTH


def test_streaming_response(frontend):
    n, delay = 5, 0.4
    conn = http.client.HTTPConnection("127.0.0.1", frontend.port, timeout=60)
    try:
        t0 = time.monotonic()
        conn.request("GET", h.MOUNT + f"/stream/?n={n}&delay={delay}&size=100")
        resp = conn.getresponse()
        assert resp.status == 200
        lines, stamps = [], []
        while True:
            line = resp.readline()
            if not line:
                break
            lines.append(line)
            stamps.append(time.monotonic() - t0)
    finally:
        conn.close()
    assert len(lines) == n, lines
    for i, line in enumerate(lines):
        assert line.startswith(f"chunk {i} of {n} ".encode())
        assert len(line) == 100
    spread = stamps[-1] - stamps[0]
    # The body takes (n-1)*delay = 1.6 s to produce; a buffering path delivers it all at once.
    assert spread >= 0.6 * (n - 1) * delay, f"chunks not delivered incrementally: arrival times {stamps}"


def test_app_exception_gives_clean_500(frontend):
    token = uuid.uuid4().hex
    offset = frontend.apache.log_offset()
    r = frontend.request("GET", f"/boom/?token={token}")
    assert r.status == 500, r
    assert token.encode() not in r.body
    assert b"Traceback" not in r.body
    assert b"RuntimeError" not in r.body
    # The traceback goes to Apache's error log.
    deadline = time.monotonic() + 5
    log = ""
    while time.monotonic() < deadline:
        log = frontend.apache.error_log_since(offset)
        if token in log and "Traceback" in log:
            break
        time.sleep(0.1)
    extra = ""
    if frontend.backend is not None and token in frontend.backend.log():
        extra = " (it is in the daemon's own log only)"
    assert token in log and "Traceback" in log, f"traceback not in Apache error log{extra}:\n{log[-3000:]}"
    # The front end keeps working after the error.
    assert frontend.request("GET", "/echo/after-error").status == 200


def test_keepalive_sequence(frontend):
    """Many requests over one client connection (and, with enablereuse, one backend connection)."""
    count = 5 if frontend.name in PER_REQUEST_PROCESS else 40
    conn = http.client.HTTPConnection("127.0.0.1", frontend.port, timeout=60)
    try:
        for i in range(count):
            if i % 2:
                r = h.request(frontend.port, "POST", h.MOUNT + f"/echo/seq{i}", body=b"x" * i, conn=conn)
            else:
                r = h.request(frontend.port, "GET", h.MOUNT + f"/echo/seq{i}?i={i}", conn=conn)
            assert r.status == 200, (i, r)
            d = r.json()
            assert d["path_info"] == f"/echo/seq{i}"
            if i % 2:
                assert d["body_length"] == i
    finally:
        conn.close()


def test_concurrent_requests(frontend):
    if frontend.name not in DAEMON_FRONTENDS and frontend.name != "relay":
        pytest.skip("per-request processes (cgi) or one request per process (fcgid)")
    budget = DAEMON_WORKERS * DAEMON_THREADS
    t0 = time.monotonic()
    with ThreadPoolExecutor(budget) as pool:
        results = list(pool.map(lambda i: frontend.request("GET", "/slow/?t=1"), range(budget)))
    elapsed = time.monotonic() - t0
    assert all(r.status == 200 for r in results), results
    if frontend.name in DAEMON_FRONTENDS:
        # workers x threads requests of 1 s each run side by side, not one after the other
        assert elapsed < 3.5, f"{budget} concurrent 1 s requests took {elapsed:.1f}s"
