"""CGI/1.1 front end (RFC 3875): one request per process."""

import io
import os
import sys

from . import log
from .environ import LimitedInput, add_wsgi_keys, content_length, decode_variables, fix_paths
from .loader import load_app, prepare_process
from .response import ClientDisconnected, Response, run_app

SPOOL_IN_MEMORY = 1024 * 1024


class FdWriter:
    """Sends response bytes to a file descriptor, flushing every chunk."""

    def __init__(self, fd):
        self.fd = fd

    def __call__(self, data):
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            raise ClientDisconnected(str(exc)) from None


def take_stdout():
    """Keep the real stdout for the response; everything else printing goes to stderr.

    fd 1 itself is pointed at stderr too, so output of C extensions and
    subprocesses cannot reach the client either.
    """
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out_fd


def _stdin():
    try:
        return os.fdopen(0, "rb", closefd=False)
    except OSError:
        return io.BytesIO()


def _spool():
    import tempfile  # only here: it costs more to import than most of a CGI run

    return tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)


def _read_until_eof(stream, limit):
    """(body, size) of a body of unknown length; body is None when it exceeds limit."""
    spool = _spool()
    size = 0
    while True:
        chunk = stream.read(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            spool.close()
            return None, size
        spool.write(chunk)
    spool.seek(0)
    return spool, size


def _read_exactly(stream, length):
    """(body, size) of a body of a declared length; body is None when the stream ends short.

    The whole body is read before the application runs, so that it never
    acts on one the client did not finish sending.
    """
    if length <= SPOOL_IN_MEMORY:
        data = stream.read(length) if length else b""
        return (io.BytesIO(data) if len(data) == length else None), len(data)
    spool = _spool()
    size = 0
    while size < length:
        chunk = stream.read(min(65536, length - size))
        if not chunk:
            spool.close()
            return None, size
        spool.write(chunk)
        size += len(chunk)
    spool.seek(0)
    return spool, size


def prepare_request(variables, config, stdin, front_end="cgi"):
    """The environ for a CGI request, or an error status when it must be refused."""
    environ = decode_variables(variables)
    fix_paths(environ, config.mount_prefix)
    try:
        length = content_length(environ)
    except ValueError:
        return environ, "400 Bad Request"
    if length is None:
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            body, length = _read_until_eof(stdin, config.max_body)
            if body is None:
                return environ, "413 Content Too Large"
            environ["CONTENT_LENGTH"] = str(length)
        else:
            body, length = io.BytesIO(), 0
    elif length > config.max_body:
        return environ, "413 Content Too Large"
    else:
        body, size = _read_exactly(stdin, length)
        if body is None:
            log.warn("the request body ended after %d of %d bytes (CONTENT_LENGTH)", size, length)
            return environ, "400 Bad Request"
    add_wsgi_keys(
        environ,
        LimitedInput(body, length),
        log.ErrorStream(),
        multithread=False,
        multiprocess=True,
        run_once=True,
        front_end=front_end,
        in_process=True,
    )
    return environ, None


def serve(config, variables=None, front_end="cgi"):
    """Answer the CGI request of this process; returns the exit status.

    front_end is "relay" when the relay runs the application in-process.
    """
    response = Response(FdWriter(take_stdout()))
    if variables is None:
        variables = dict(os.environb)
    environ, refusal = prepare_request(variables, config, _stdin(), front_end)
    if refusal:
        log.notice("%s %s: refused: %s", environ.get("REQUEST_METHOD", "?"), environ.get("REQUEST_URI", ""), refusal)
        try:
            response.send_error(refusal)
        except ClientDisconnected:
            pass
        return 0
    try:
        prepare_process(config)
        app = load_app(config)
    except BaseException:
        log.exception("cannot load the application")
        try:
            response.send_error("500 Internal Server Error")
        except ClientDisconnected:
            pass
        return 1
    run_app(app, environ, response)
    return 0


def main(config):
    return serve(config)
