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


def _spool(stream, limit):
    """Read a body of unknown length; None when it exceeds limit."""
    import tempfile  # only here: it costs more to import than most of a CGI run

    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
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


def prepare_request(variables, config, stdin):
    """The environ for a CGI request, or an error status when it must be refused."""
    environ = decode_variables(variables)
    fix_paths(environ, config.mount_prefix)
    try:
        length = content_length(environ)
    except ValueError:
        return environ, "400 Bad Request"
    if length is None:
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            stdin, length = _spool(stdin, config.max_body)
            if stdin is None:
                return environ, "413 Content Too Large"
            environ["CONTENT_LENGTH"] = str(length)
        else:
            length = 0
    elif length > config.max_body:
        return environ, "413 Content Too Large"
    add_wsgi_keys(
        environ, LimitedInput(stdin, length), log.ErrorStream(), multithread=False, multiprocess=True, run_once=True
    )
    return environ, None


def serve(config, variables=None):
    """Answer the CGI request of this process; returns the exit status."""
    response = Response(FdWriter(take_stdout()))
    if variables is None:
        variables = dict(os.environb)
    environ, refusal = prepare_request(variables, config, _stdin())
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
