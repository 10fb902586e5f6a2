import json
import os
import subprocess
import sys

from support import HERE, SRC


def cgi_env(path_info="/x", method="GET", **extra):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([SRC, HERE]),
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "Apache/2.4",
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "/cgi-bin/app.cgi",
        "PATH_INFO": path_info,
        "REQUEST_URI": "/cgi-bin/app.cgi" + path_info,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
    }
    env.update(extra)
    return env


def run_cgi(env, body=b"", args=("--app", "apps:application")):
    proc = subprocess.run(
        [sys.executable, "-m", "wsgate", "cgi", *args], input=body, env=env, capture_output=True, timeout=20
    )
    return proc


def split(stdout):
    head, _, body = stdout.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n"), body


def test_post_with_validator():
    body = b"field=value"
    proc = run_cgi(
        cgi_env("/form", "POST", CONTENT_LENGTH=str(len(body)), HTTPS="on", HTTP_AUTHORIZATION="Basic dTpw"),
        body + b"ignored",
    )
    head, payload = split(proc.stdout)
    assert head[0] == "Status: 200 OK"
    data = json.loads(payload)
    assert data["body_len"] == len(body)  # wsgi.input stops at CONTENT_LENGTH
    assert (data["SCRIPT_NAME"], data["PATH_INFO"]) == ("/cgi-bin/app.cgi", "/form")
    assert data["url_scheme"] == "https" and data["run_once"] is True
    assert data["HTTP_AUTHORIZATION"] == "Basic dTpw"
    assert proc.returncode == 0


def test_environ_bytes_are_latin1():
    env = {k.encode(): v.encode() for k, v in cgi_env().items()}
    env[b"PATH_INFO"] = "/caf\xe9".encode()
    env[b"REQUEST_URI"] = b"/cgi-bin/app.cgi/caf%C3%A9"
    proc = subprocess.run(
        [sys.executable, "-m", "wsgate", "cgi", "--app", "apps:application"], env=env, capture_output=True, timeout=20
    )
    data = json.loads(split(proc.stdout)[1])
    assert data["PATH_INFO"] == "/caf\xc3\xa9"
    assert data["SCRIPT_NAME"] == "/cgi-bin/app.cgi"


def test_rewrite_to_script_drops_script_name():
    proc = run_cgi(cgi_env("/page", REQUEST_URI="/page"))
    data = json.loads(split(proc.stdout)[1])
    assert (data["SCRIPT_NAME"], data["PATH_INFO"]) == ("", "/page")


def test_print_does_not_corrupt_output():
    proc = run_cgi(cgi_env("/print"))
    assert proc.stdout == (b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nclean body")
    assert b"printed at import time" in proc.stderr
    assert b"this must not reach the client" in proc.stderr
    assert b"nor this raw write" in proc.stderr


def test_exception_gives_clean_500():
    proc = run_cgi(cgi_env("/boom"))
    head, body = split(proc.stdout)
    assert head[0] == "Status: 500 Internal Server Error"
    assert body == b"Internal Server Error\n"
    assert b"Traceback" in proc.stderr and b"boom in the application" in proc.stderr
    assert b"[wsgate:error]" in proc.stderr


def test_error_after_headers_sent():
    proc = run_cgi(cgi_env("/late-boom"))
    assert proc.stdout.count(b"Status:") == 1
    assert proc.stdout.endswith(b"\r\n\r\nfirst part")
    assert b"late boom" in proc.stderr and b"truncated" in proc.stderr


def test_chunked_body_without_length():
    body = os.urandom(1500000)
    proc = run_cgi(cgi_env("/up", "POST", HTTP_TRANSFER_ENCODING="chunked"), body)
    data = json.loads(split(proc.stdout)[1])
    assert data["CONTENT_LENGTH"] == str(len(body)) and data["body_len"] == len(body)


def test_body_too_large():
    proc = run_cgi(
        cgi_env("/up", "POST", CONTENT_LENGTH="5000"),
        b"x" * 5000,
        args=("--app", "apps:application", "--max-body", "1K"),
    )
    head, _body = split(proc.stdout)
    assert head[0] == "Status: 413 Content Too Large"
    assert b"printed at import time" not in proc.stderr  # the app was never loaded


def test_app_file_and_callable(tmp_path):
    script = tmp_path / "site.wsgi"
    script.write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'from file']\n"
    )
    proc = run_cgi(cgi_env("/"), args=("--app-file", str(script), "--callable", "app"))
    assert split(proc.stdout)[1] == b"from file"


def test_env_options_and_unloadable_app():
    env = cgi_env("/", WSGATE_APP="apps:missing_name")
    proc = run_cgi(env, args=())
    assert split(proc.stdout)[0][0] == "Status: 500 Internal Server Error"
    assert b"missing_name" in proc.stderr
    assert proc.returncode == 1


def test_front_end_is_cgi():
    data = json.loads(split(run_cgi(cgi_env("/")).stdout)[1])
    assert (data["front_end"], data["relay_backend"]) == ("cgi", None)


def test_body_shorter_than_content_length_is_refused(tmp_path):
    ledger = tmp_path / "ledger"
    env = cgi_env("/record", "POST", CONTENT_LENGTH=str(1024**3), QUERY_STRING=str(ledger), HTTP_X_ID="short")
    proc = run_cgi(env, b"abcd")
    assert split(proc.stdout)[0][0] == "Status: 400 Bad Request"
    assert b"ended after 4 of 1073741824 bytes" in proc.stderr
    assert b"printed at import time" not in proc.stderr  # the app was never loaded
    assert not ledger.exists()


def test_long_body_shorter_than_content_length_is_refused(tmp_path):
    ledger = tmp_path / "ledger"
    body = os.urandom(1500000)
    env = cgi_env("/record", "POST", CONTENT_LENGTH=str(2 * 1024 * 1024), QUERY_STRING=str(ledger), HTTP_X_ID="x")
    proc = run_cgi(env, body)
    assert split(proc.stdout)[0][0] == "Status: 400 Bad Request"
    assert not ledger.exists()


def test_long_body_is_read_whole():
    body = os.urandom(3 * 1024 * 1024 + 5)
    proc = run_cgi(cgi_env("/up", "POST", CONTENT_LENGTH=str(len(body))), body)
    data = json.loads(split(proc.stdout)[1])
    assert data["body_len"] == len(body) and data["body_head"] == body[:64].decode("latin-1")
