"""WSGI applications used by the tests (imported by the servers under test)."""

import json
import os
import sys
import time
from wsgiref.validate import validator

print("printed at import time")


def _plain(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/sleep":
        seconds = float(environ.get("QUERY_STRING") or "1")
        time.sleep(seconds)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept"]
    if path == "/boom":
        raise RuntimeError("boom in the application")
    if path == "/complain":
        environ["wsgi.errors"].write("complaint one\ncomplaint ")
        environ["wsgi.errors"].write("two\n")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"complained"]
    if path == "/late-boom":

        def gen():
            yield b"first part"
            raise RuntimeError("late boom")

        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/print":
        print("this must not reach the client")
        sys.stdout.write("nor this\n")
        os.write(1, b"nor this raw write\n")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"clean body"]
    if path == "/stream":
        return _Stream(environ, start_response)
    if path == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if path == "/record":
        # a side effect: the request id is appended to the file named by the query
        with open(environ["QUERY_STRING"], "a") as handle:
            handle.write(environ["HTTP_X_ID"] + "\n")
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Pid", str(os.getpid()))])
        return [environ["HTTP_X_ID"].encode()]
    if path == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [b"x" * 200000]
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    info = {
        "SCRIPT_NAME": environ["SCRIPT_NAME"],
        "PATH_INFO": environ["PATH_INFO"],
        "QUERY_STRING": environ.get("QUERY_STRING", ""),
        "CONTENT_LENGTH": environ.get("CONTENT_LENGTH", ""),
        "url_scheme": environ["wsgi.url_scheme"],
        "HTTP_AUTHORIZATION": environ.get("HTTP_AUTHORIZATION"),
        "multithread": environ["wsgi.multithread"],
        "run_once": environ["wsgi.run_once"],
        "body_len": len(body),
        "body_head": body[:64].decode("latin-1"),
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "front_end": environ.get("wsgate.front_end"),
        "relay_backend": environ.get("wsgate.relay_backend"),
    }
    data = json.dumps(info).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


CLOSED = []


class _Stream:
    """Yields chunks slowly; records close() in a file named by ?marker."""

    def __init__(self, environ, start_response):
        self.marker = environ.get("QUERY_STRING")
        start_response("200 OK", [("Content-Type", "text/plain")])

    def __iter__(self):
        for i in range(200):
            yield b"chunk %d\n" % i
            time.sleep(0.05)

    def close(self):
        if self.marker:
            with open(self.marker, "w") as handle:
                handle.write("closed")


application = validator(_plain)
