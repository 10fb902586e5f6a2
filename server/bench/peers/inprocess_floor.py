"""The application's own floor: the benchmark view called in-process in a loop, no server.

Each call gets a fresh environ like the one a gateway builds for GET /app/hello/ behind
Apache (the variables mod_proxy_fcgi sends, SCRIPT_NAME=/app, PATH_INFO=/hello/), and the
response is consumed and closed as a server would. Prints the CPU time (user + system, this
process) per call in microseconds, after a warm-up that is not counted.

usage: inprocess_floor.py CALLS
"""

import io
import sys
import time

from testsite.wsgi import application

BASE = {
    "HTTP_HOST": "127.0.0.1:8080",
    "HTTP_USER_AGENT": "wrk",
    "HTTP_ACCEPT": "*/*",
    "HTTP_CONNECTION": "keep-alive",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "SERVER_SIGNATURE": "",
    "SERVER_SOFTWARE": "Apache/2.4",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_ADDR": "127.0.0.1",
    "SERVER_PORT": "8080",
    "REMOTE_ADDR": "127.0.0.1",
    "DOCUMENT_ROOT": "/srv/htdocs",
    "REQUEST_SCHEME": "http",
    "CONTEXT_PREFIX": "",
    "CONTEXT_DOCUMENT_ROOT": "/srv/htdocs",
    "SERVER_ADMIN": "[no address given]",
    "SCRIPT_FILENAME": "proxy:fcgi://localhost/app/hello/",
    "REMOTE_PORT": "40000",
    "GATEWAY_INTERFACE": "CGI/1.1",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REQUEST_METHOD": "GET",
    "QUERY_STRING": "",
    "REQUEST_URI": "/app/hello/",
    "SCRIPT_NAME": "/app",
    "PATH_INFO": "/hello/",
    "CONTENT_LENGTH": "0",
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": True,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
}


def start_response(status, headers, exc_info=None):
    return None


def call():
    environ = dict(BASE)
    environ["wsgi.input"] = io.BytesIO()
    body = application(environ, start_response)
    try:
        for _ in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def main():
    calls = int(sys.argv[1])
    for _ in range(max(200, calls // 10)):
        call()
    started = time.process_time()
    for _ in range(calls):
        call()
    print("%.3f" % ((time.process_time() - started) * 1e6 / calls))


if __name__ == "__main__":
    main()
