"""Building the PEP 3333 environ from CGI-style variables."""

from . import log

_HEX = frozenset(b"0123456789abcdefABCDEF")


def unquote_to_bytes(data):
    """Percent-decoding of bytes; malformed escapes are kept as they are."""
    parts = data.split(b"%")
    out = [parts[0]]
    for part in parts[1:]:
        if len(part) >= 2 and part[0] in _HEX and part[1] in _HEX:
            out.append(bytes((int(part[:2], 16),)) + part[2:])
        else:
            out.append(b"%" + part)
    return b"".join(out)


def decode_variables(variables):
    """bytes -> str for every name and value, carried as latin-1 (PEP 3333)."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in variables.items()}


def _request_path(environ):
    """The decoded path of REQUEST_URI as a latin-1 string, or None."""
    uri = environ.get("REQUEST_URI")
    if not uri:
        return None
    path = uri.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/") and "://" in path:
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    return unquote_to_bytes(path.encode("latin-1")).decode("latin-1")


def fix_paths(environ, mount_prefix=None, whole_path_in_script_name=False):
    """Make SCRIPT_NAME + PATH_INFO describe the public URL.

    mount_prefix: SCRIPT_NAME is the prefix, PATH_INFO the rest of the path.
    whole_path_in_script_name: the peer is mod_proxy_fcgi, which without
    proxy-fcgi-pathinfo puts the whole decoded path in SCRIPT_NAME and sends
    no PATH_INFO; the application is then taken to be mounted at the root.
    Otherwise, when PATH_INFO is given and the public path ends with it, what
    precedes it is the public SCRIPT_NAME (this drops the /app.fcgi of a
    rewrite-to-script set-up).
    """
    path = _request_path(environ)
    script = environ.get("SCRIPT_NAME", "")
    info = environ.get("PATH_INFO", "")
    if mount_prefix is not None:
        if path is None:
            path = script + info
        if path == mount_prefix or path.startswith(mount_prefix + "/"):
            script, info = mount_prefix, path[len(mount_prefix) :]
        else:
            log.debug("path %r is outside --mount-prefix %r", path, mount_prefix)
            script, info = "", path
    elif info:
        if path is not None and path.endswith(info):
            script = path[: len(path) - len(info)]
    elif whole_path_in_script_name:
        script, info = "", script or path or ""
    if script == "/":
        script = ""
    environ["SCRIPT_NAME"] = script
    environ["PATH_INFO"] = info


def url_scheme(environ):
    if environ.get("HTTPS", "").lower() in ("on", "1"):
        return "https"
    if environ.get("REQUEST_SCHEME", "").lower() == "https":
        return "https"
    return "http"


def add_wsgi_keys(environ, body, errors, multithread, multiprocess, run_once, front_end, in_process=False):
    """The PEP 3333 keys, and wsgate's own.

    wsgate.front_end: "cgi", "fastcgi", "fcgid" or "relay"; relay requests
    also tell wsgate.relay_backend: "warm" (the backend the relay started)
    or "in-process" (the relay's fallback).
    """
    environ["wsgi.version"] = (1, 0)
    environ["wsgi.url_scheme"] = url_scheme(environ)
    environ["wsgi.input"] = body
    environ["wsgi.errors"] = errors
    environ["wsgi.multithread"] = multithread
    environ["wsgi.multiprocess"] = multiprocess
    environ["wsgi.run_once"] = run_once
    environ["wsgi.input_terminated"] = True
    environ["wsgate.front_end"] = front_end
    if front_end == "relay":
        environ["wsgate.relay_backend"] = "in-process" if in_process else "warm"
    environ.setdefault("SERVER_NAME", "localhost")
    environ.setdefault("SERVER_PORT", "443" if environ["wsgi.url_scheme"] == "https" else "80")
    environ.setdefault("SERVER_PROTOCOL", "HTTP/1.0")
    environ.setdefault("REQUEST_METHOD", "GET")
    environ.setdefault("QUERY_STRING", "")


def content_length(environ):
    """CONTENT_LENGTH as int, None when absent; ValueError when malformed."""
    raw = environ.get("CONTENT_LENGTH", "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ValueError("invalid CONTENT_LENGTH %r" % raw)
    return int(raw)


class LimitedInput:
    """wsgi.input: a binary stream cut at the request's content length."""

    def __init__(self, stream, length):
        self._stream = stream
        self._remaining = length

    def _budget(self, size):
        if size is None or size < 0 or size > self._remaining:
            return self._remaining
        return size

    def read(self, size=-1):
        size = self._budget(size)
        if not size:
            return b""
        data = self._stream.read(size)
        self._remaining -= len(data)
        return data

    def readline(self, size=-1):
        size = self._budget(size)
        if not size:
            return b""
        data = self._stream.readline(size)
        self._remaining -= len(data)
        return data

    def readlines(self, hint=-1):
        lines, total = [], 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def close(self):
        pass
