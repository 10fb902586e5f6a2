"""The CGI floor: start the interpreter, import Django and the test site's WSGI application
(django.setup() included), print a fixed response and exit, without serving the request."""

import sys

from testsite.wsgi import application  # noqa: F401

sys.stdout.buffer.write(b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nHello, world!\n")
