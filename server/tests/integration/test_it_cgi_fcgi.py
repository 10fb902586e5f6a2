"""`wsgate fastcgi` driven by libfcgi's reference client, `cgi-fcgi -bind -connect SOCKET`,
with the CGI variables in its environment and the request body on its stdin."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlencode

import it_harness as h
import pytest
from it_setup import UPLOAD_SIZE, start_daemon


class CgiFcgiResult:
    def __init__(self, returncode: int, stdout: bytes, stderr: bytes):
        self.returncode = returncode
        self.stderr = stderr
        sep = min((i for i in (stdout.find(b"\r\n\r\n"), stdout.find(b"\n\n")) if i >= 0), default=-1)
        if sep < 0:
            raise AssertionError(f"no header/body separator in cgi-fcgi output: {stdout[:500]!r} {stderr[:500]!r}")
        head = stdout[:sep].decode("latin-1")
        self.body = stdout[sep + (4 if stdout[sep : sep + 4] == b"\r\n\r\n" else 2) :]
        self.headers: dict[str, str] = {}
        for line in head.replace("\r\n", "\n").split("\n"):
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.status = int(self.headers.get("status", "200").split()[0])

    def json(self):
        import json

        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<cgi-fcgi {self.status} {self.headers} {self.body[:300]!r} stderr={self.stderr[:300]!r}>"


class FcgiDaemon:
    def __init__(self, backend: h.Backend, sock: Path):
        self.backend = backend
        self.sock = sock

    def diagnostics(self) -> str:
        return "--- daemon log ---\n" + self.backend.log()[-5000:]

    def env(
        self, method: str, path_info: str, query: str = "", extra: dict | None = None, script_name: str = h.MOUNT
    ) -> dict[str, str]:
        raw_path = quote(script_name + path_info, safe="/")
        env = {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": "cgi-fcgi-test",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_ADDR": "127.0.0.1",
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": "40000",
            "REQUEST_SCHEME": "http",
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": script_name,
            "PATH_INFO": path_info,
            "QUERY_STRING": query,
            "REQUEST_URI": raw_path + ("?" + query if query else ""),
            "HTTP_HOST": "127.0.0.1",
        }
        env.update(extra or {})
        return env

    def run(
        self,
        method: str,
        path_info: str,
        query: str = "",
        body: bytes | Path | None = None,
        content_type: str | None = None,
        extra: dict | None = None,
        timeout: float = 120,
    ):
        extra = dict(extra or {})
        if body is not None:
            size = body.stat().st_size if isinstance(body, Path) else len(body)
            extra["CONTENT_LENGTH"] = str(size)
            if content_type:
                extra["CONTENT_TYPE"] = content_type
        env = self.env(method, path_info, query, extra)
        argv = ["cgi-fcgi", "-bind", "-connect", str(self.sock)]
        if isinstance(body, Path):
            with open(body, "rb") as fh:
                res = subprocess.run(argv, env=env, stdin=fh, capture_output=True, timeout=timeout)
        else:
            res = subprocess.run(argv, env=env, input=body or b"", capture_output=True, timeout=timeout)
        return CgiFcgiResult(res.returncode, res.stdout, res.stderr)


@pytest.fixture(scope="module")
def fcgi_daemon(venv, project, itbase):
    workdir = h.make_dir(itbase / "cgi-fcgi")
    backend, sock = start_daemon(venv, project, workdir)
    yield FcgiDaemon(backend, sock)
    backend.stop()


def test_get(fcgi_daemon):
    r = fcgi_daemon.run("GET", "/echo/x", "a=1&b=%C3%A9")
    assert r.status == 200, r
    assert r.headers["content-type"] == "application/json"
    d = r.json()
    assert d["path_info"] == "/echo/x"
    assert d["script_name"] == h.MOUNT
    assert d["path"] == h.MOUNT + "/echo/x"
    assert d["GET"] == {"a": ["1"], "b": ["é"]}
    assert d["gateway_interface"] == "CGI/1.1"


def test_post_form(fcgi_daemon):
    body = urlencode([("name", "Zoë"), ("n", "1"), ("n", "2")]).encode()
    r = fcgi_daemon.run("POST", "/form/", body=body, content_type="application/x-www-form-urlencoded")
    assert r.status == 200, r
    assert r.json()["POST"] == {"name": ["Zoë"], "n": ["1", "2"]}


def test_upload_50mb(fcgi_daemon, upload_blob, itbase):
    data, sha = upload_blob
    path = itbase / "upload.bin"
    if not path.exists():
        path.write_bytes(data)
    r = fcgi_daemon.run("POST", "/upload/", body=path, content_type="application/octet-stream")
    assert r.status == 200, r
    d = r.json()
    assert d["body_length"] == UPLOAD_SIZE
    assert d["body_sha256"] == sha


def test_non_ascii_path_and_query(fcgi_daemon):
    path = "/echo/ünï cödé/日本語/😀"
    query = urlencode([("q", "ü日本"), ("sp", "a b")])
    r = fcgi_daemon.run("GET", path, query)
    assert r.status == 200, r
    d = r.json()
    assert d["path_info"] == path
    assert d["path"] == h.MOUNT + path
    assert d["GET"] == {"q": ["ü日本"], "sp": ["a b"]}


def test_authorization(fcgi_daemon):
    auth = "Bearer abc.DEF-123_xyz"
    r = fcgi_daemon.run("GET", "/echo/auth", extra={"HTTP_AUTHORIZATION": auth})
    assert r.status == 200, r
    d = r.json()
    assert d["has_authorization"] is True
    assert d["authorization"] == auth


def test_streaming(fcgi_daemon):
    n, delay = 4, 0.4
    env = fcgi_daemon.env("GET", "/stream/", f"n={n}&delay={delay}&size=80")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        ["cgi-fcgi", "-bind", "-connect", str(fcgi_daemon.sock)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stamps, chunks = [], []
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            break
        chunks.append(line)
        if line.startswith(b"chunk "):
            stamps.append(time.monotonic() - t0)
    proc.wait(30)
    out = b"".join(chunks)
    r = CgiFcgiResult(proc.returncode, out, proc.stderr.read() if proc.stderr else b"")
    assert r.status == 200, r
    lines = r.body.splitlines(keepends=True)
    assert [ln[:13] for ln in lines] == [f"chunk {i} of {n} ".encode() for i in range(n)]
    assert len(stamps) == n
    assert stamps[-1] - stamps[0] >= 0.6 * (n - 1) * delay, f"not streamed: {stamps}"


def test_exception(fcgi_daemon):
    token = uuid.uuid4().hex
    r = fcgi_daemon.run("GET", "/boom/", f"token={token}")
    assert r.status == 500, r
    assert token.encode() not in r.body and b"Traceback" not in r.body
    # The traceback travels on FCGI_STDERR, which cgi-fcgi copies to its stderr.
    assert token.encode() in r.stderr and b"Traceback" in r.stderr, r.stderr[-2000:]


def test_no_mount_prefix_root_script(fcgi_daemon):
    """An application at the root: SCRIPT_NAME empty."""
    res = subprocess.run(
        ["cgi-fcgi", "-bind", "-connect", str(fcgi_daemon.sock)],
        env=fcgi_daemon.env("GET", "/echo/root", script_name=""),
        input=b"",
        capture_output=True,
        timeout=60,
    )
    r = CgiFcgiResult(res.returncode, res.stdout, res.stderr)
    assert r.status == 200, r
    d = r.json()
    assert d["script_name"] == ""
    assert d["path"] == "/echo/root"
