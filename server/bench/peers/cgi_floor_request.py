"""CGI floor with the application's own work: start Python, import the app, then call it once
for this request with a bare-bones CGI environ (no error handling, no streaming, no header
checks) and print what it returns.  The difference to cgi_floor.py is what Django itself
spends on a first request in a fresh process."""

import os
import sys

from testsite.wsgi import application

environ = dict(os.environ)
environ.update(
    {
        "wsgi.input": sys.stdin.buffer,
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": True,
        "wsgi.url_scheme": "http",
    }
)
out = sys.stdout.buffer
head = []


def start_response(status, headers, exc_info=None):
    head.append(("Status: %s\r\n" % status + "".join("%s: %s\r\n" % h for h in headers) + "\r\n").encode("latin-1"))
    return out.write


body = application(environ, start_response)
out.write(head[0])
for chunk in body:
    out.write(chunk)
out.flush()
