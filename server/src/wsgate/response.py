"""Running a WSGI application and writing its response in CGI format.

Both CGI and FastCGI responses are a `Status:` header, the headers, a blank
line and the body; the front end supplies the function that sends bytes.
"""

from . import log

HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    )
)
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_BAD_VALUE = frozenset(chr(c) for c in range(32) if c != 9) | {"\x7f"}


class ClientDisconnected(Exception):
    """The web server went away or the request was aborted or timed out."""


def _check_status(status):
    if not isinstance(status, str):
        raise TypeError("status must be str, got %r" % (status,))
    if len(status) < 4 or not status[:3].isdigit() or status[3] != " " or not _BAD_VALUE.isdisjoint(status):
        raise ValueError("status must look like '200 OK', got %r" % (status,))


def _check_header(name, value):
    if not isinstance(name, str) or not isinstance(value, str):
        raise TypeError("header name and value must be str, got %r" % ((name, value),))
    if not name or not _TOKEN.issuperset(name):
        raise ValueError("invalid header name %r" % (name,))
    if not _BAD_VALUE.isdisjoint(value):
        raise ValueError("control character in value of header %r" % (name,))


def error_head(status, extra_headers=()):
    body = ("%s\n" % status[4:]).encode("latin-1")
    lines = ["Status: %s" % status, "Content-Type: text/plain; charset=utf-8", "Content-Length: %d" % len(body)]
    lines.extend(extra_headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Response:
    """start_response(), write() and the header block for one request."""

    def __init__(self, send, send_last=None):
        self._send = send
        # For the bytes that complete the body: the front end may hold them
        # back to go out with the end of the request, in one write.
        self._send_last = send_last or send
        self.status = None
        self.headers = None
        self.headers_sent = False
        self.length_hint = None
        self.body_left = None

    def start_response(self, status, headers, exc_info=None):
        if exc_info:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        _check_status(status)
        headers = list(headers)
        for item in headers:
            if not isinstance(item, tuple) or len(item) != 2:
                raise TypeError("headers must be a list of (name, value) tuples")
            _check_header(*item)
        dropped = [name for name, _ in headers if name.lower() in HOP_BY_HOP]
        if dropped:
            # PEP 3333 forbids them; the web server owns the connection.
            log.warn("dropping hop-by-hop response header(s) %s", ", ".join(dropped))
            headers = [h for h in headers if h[0].lower() not in HOP_BY_HOP]
        self.status = status
        self.headers = headers
        return self.write

    def _head(self):
        lines = ["Status: " + self.status]
        lines.extend("%s: %s" % item for item in self.headers)
        if self.length_hint is not None and not any(name.lower() == "content-length" for name, _ in self.headers):
            lines.append("Content-Length: %d" % self.length_hint)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _declared_length(self):
        for name, value in self.headers:
            if name.lower() == "content-length":
                value = value.strip()
                return int(value) if value.isdigit() else None
        return self.length_hint

    def write(self, data):
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("the application must produce bytes, got %s" % type(data).__name__)
        if self.status is None:
            raise AssertionError("write() before start_response()")
        if not data:
            return
        if self.headers_sent:
            chunk = bytes(data)
        else:
            chunk = self._head() + data
            self.headers_sent = True
            self.body_left = self._declared_length()
        if self.body_left is not None:
            self.body_left -= len(data)
            if self.body_left == 0:
                self._send_last(chunk)
                return
        self._send(chunk)

    def finish(self):
        """Send the headers if the body was empty."""
        if self.status is None:
            raise AssertionError("the application returned without calling start_response()")
        if not self.headers_sent:
            if self.length_hint is None:
                self.length_hint = 0
            head = self._head()
            self.headers_sent = True
            self._send_last(head)

    def send_error(self, status, extra_headers=()):
        """A plain error page when nothing was sent yet; True when it was sent."""
        if self.headers_sent:
            return False
        self.headers_sent = True
        self._send(error_head(status, extra_headers))
        return True


def describe(environ):
    return "%s %s%s" % (
        environ.get("REQUEST_METHOD", "?"),
        environ.get("SCRIPT_NAME", ""),
        environ.get("PATH_INFO", ""),
    )


def run_app(app, environ, response, should_stop=None, logger=log):
    """Call the application and stream its result; never raises.

    Returns "ok", "error" (the application failed) or "aborted" (the client
    went away, or the request was aborted or timed out). The iterable's
    close() is called in every case. Errors are reported to logger (the log
    module, or a log.RequestLog).
    """
    result = None
    outcome = "ok"
    try:
        result = app(environ, response.start_response)
        if isinstance(result, (list, tuple)) and len(result) == 1:
            response.length_hint = len(result[0])
        first = True
        for chunk in result:
            if should_stop is not None and not first and should_stop():
                raise ClientDisconnected("request aborted")
            first = False
            response.write(chunk)
        response.finish()
    except ClientDisconnected as exc:
        outcome = "aborted"
        logger.info("%s: stopped: %s", describe(environ), exc or "client went away")
    except Exception:
        outcome = "error"
        logger.exception("%s: application error", describe(environ))
        try:
            if not response.send_error("500 Internal Server Error"):
                logger.error("%s: response truncated: the error came after the headers were sent", describe(environ))
        except ClientDisconnected:
            pass
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                outcome = "error" if outcome == "ok" else outcome
                logger.exception("%s: error in close() of the application's iterable", describe(environ))
    errors = environ.get("wsgi.errors")
    if errors is not None and hasattr(errors, "flush"):
        try:
            errors.flush()
        except Exception:
            pass
    return outcome
