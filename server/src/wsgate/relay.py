"""`wsgate relay`: a CGI program that forwards its request to a warm backend.

It runs once per request, so it imports only what forwarding needs, C modules
where it can: _socket, not socket.py (which pulls in enum and selectors), and
posix, not os (whose import costs as many instructions as a quarter of the
interpreter's own start-up); os is imported only to start a backend.
The backend is a `wsgate fastcgi` on a per-user unix socket, started on demand
(under a lock so concurrent first requests start one) and stopped by its own
--idle-timeout. A request goes only to a backend that has answered on its
connection; one that drops it unanswered is replaced once by a fresh one,
and if no backend answers in time the request is served in-process, as
`wsgate cgi` would.
"""

import _socket
import _stat
import binascii
import posix
import sys
import time

from . import protocol as p

REQUEST_VARIABLES = frozenset(
    (
        "AUTH_TYPE",
        "CONTENT_LENGTH",
        "CONTENT_TYPE",
        "CONTEXT_DOCUMENT_ROOT",
        "CONTEXT_PREFIX",
        "DOCUMENT_ROOT",
        "GATEWAY_INTERFACE",
        "HTTPS",
        "PATH_INFO",
        "PATH_TRANSLATED",
        "QUERY_STRING",
        "REMOTE_ADDR",
        "REMOTE_HOST",
        "REMOTE_IDENT",
        "REMOTE_PORT",
        "REMOTE_USER",
        "REQUEST_METHOD",
        "REQUEST_SCHEME",
        "REQUEST_URI",
        "SCRIPT_FILENAME",
        "SCRIPT_NAME",
        "SCRIPT_URI",
        "SCRIPT_URL",
        "SERVER_ADDR",
        "SERVER_ADMIN",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "SERVER_SIGNATURE",
        "SERVER_SOFTWARE",
        "UNIQUE_ID",
    )
)
REQUEST_PREFIXES = ("HTTP_", "SSL_", "REDIRECT_")
CHUNK = 65536


def _say(message):
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    line = "[%s] [wsgate:warn] [pid %d] relay: %s\n" % (stamp, posix.getpid(), message)
    try:
        posix.write(2, line.encode("utf-8", "backslashreplace"))
    except OSError:
        pass


# -- where the backend lives -------------------------------------------------------


def _abspath(path):
    """os.path.abspath, without importing os."""
    if not path.startswith("/"):
        path = posix.getcwd() + "/" + path
    parts = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    root = "//" if path.startswith("//") and not path.startswith("///") else "/"
    return root + "/".join(parts)


def _fsdecode(value):
    return value.decode(sys.getfilesystemencoding(), "surrogateescape")


def _is_dir(path):
    try:
        return _stat.S_ISDIR(posix.stat(path).st_mode)
    except OSError:
        return False


def _private_dir(path):
    """path as a directory only this user can use; OSError when it is not safe."""
    try:
        posix.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = posix.lstat(path)
    if not _stat.S_ISDIR(st.st_mode) or st.st_uid != posix.getuid() or st.st_mode & 0o077:
        raise OSError("%s is not a private directory of uid %d" % (path, posix.getuid()))
    return path


def runtime_dir():
    xdg = posix.environ.get(b"XDG_RUNTIME_DIR")
    if xdg and _is_dir(xdg):
        return _private_dir(_fsdecode(xdg).rstrip("/") + "/wsgate")
    return _private_dir("/tmp/wsgate-%d" % posix.getuid())


def _backend_args(config):
    args = []
    if config.app:
        args += ["--app", config.app]
    else:
        args += ["--app-file", _abspath(config.app_file)]
    args += ["--callable", config.callable]
    for entry in config.python_path:
        args += ["--python-path", _abspath(entry)]
    if config.chdir:
        args += ["--chdir", _abspath(config.chdir)]
    if config.mount_prefix is not None:
        args += ["--mount-prefix", config.mount_prefix or "/"]
    args += [
        "--max-body",
        str(config.max_body),
        "--workers",
        str(config.workers),
        "--threads",
        str(config.threads),
        "--queue",
        str(config.queue),
        "--max-requests",
        str(config.max_requests),
        "--request-timeout",
        repr(config.request_timeout),
        "--log-level",
        config.log_level,
    ]
    return args


def socket_path(config):
    """The backend socket: --socket, or one per application and settings."""
    if config.socket:
        return _abspath(config.socket)
    key = "\0".join([*_backend_args(config), posix.getcwd()]).encode("utf-8", "surrogateescape")
    return runtime_dir() + "/backend-%08x.sock" % binascii.crc32(key)


# -- starting the backend -------------------------------------------------------


def _connect(path):
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def _backend_environment():
    import os

    env = {
        name: value
        for name, value in os.environ.items()
        if name not in REQUEST_VARIABLES and not name.startswith(REQUEST_PREFIXES)
    }
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = env.get("PYTHONPATH", "").split(os.pathsep)
    if package_root not in paths:
        env["PYTHONPATH"] = os.pathsep.join([package_root] + [x for x in paths if x])
    return env


def spawn_backend(config, path):
    """Start a detached `wsgate fastcgi` on path; returns its pid."""
    import os

    argv = [
        sys.executable,
        "-m",
        "wsgate",
        "fastcgi",
        "--bind",
        "unix:" + path,
        "--socket-mode",
        "600",
        "--pidfile",
        path + ".pid",
        "--front-end",
        "relay",
        "--idle-timeout",
        repr(config.idle_timeout),
    ]
    argv += _backend_args(config)
    env = _backend_environment()
    log_path = path + ".log"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setsid()
            if os.fork():
                os._exit(0)
            os.write(write_end, str(os.getpid()).encode())
            null = os.open(os.devnull, os.O_RDWR)
            log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.dup2(log_fd, 2)
            os.closerange(3, 65536)
            os.execve(sys.executable, argv, env)
        finally:
            os._exit(127)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    return int(data) if data.isdigit() else None


def _is_socket(path):
    try:
        return _stat.S_ISSOCK(posix.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _alive(pid):
    try:
        posix.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


ANSWERS = "answers"
GONE = "gone"
SILENT = "silent"


def _check(sock, deadline):
    """Whether a worker reads this connection: ANSWERS, GONE or SILENT.

    A connection is not proof enough: the master listens before its workers
    have imported the application, and the workers of a killed master may
    hold the socket a moment longer without serving it. A worker answers
    GET_VALUES (ANSWERS); a connection closed or reset unanswered means
    nobody will serve it (GONE); SILENT is no answer before deadline.
    """
    try:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        sock.sendall(p.encode_record(p.GET_VALUES, 0, p.encode_pairs([(b"FCGI_MPXS_CONNS", b"")])))
        reader = p.RecordReader()
        while True:
            data = sock.recv(4096)
            if not data:
                return GONE
            if any(rec.type == p.GET_VALUES_RESULT for rec in reader.feed(data)):
                sock.settimeout(None)
                return ANSWERS
    except _socket.timeout:
        return SILENT
    except (OSError, p.ProtocolError):
        return GONE


def _checked(path, deadline):
    """(connection or None, state) for the backend at path."""
    sock = _connect(path)
    if sock is None:
        return None, GONE
    state = _check(sock, deadline)
    if state == ANSWERS:
        return sock, state
    sock.close()
    return None, state


def backend(config, path):
    """A connection to a backend that answers, starting a fresh one if needed; None on failure."""
    deadline = time.monotonic() + config.start_timeout
    sock, state = _checked(path, deadline)
    if state == GONE:
        sock, state = _start(config, path, deadline)
    if state == SILENT:
        _say("the backend at %s did not answer within %gs" % (path, config.start_timeout))
    return sock


def _start(config, path, deadline):
    """Start a backend on path, unless whoever held the lock just did."""
    import fcntl
    import os

    lock_fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            if time.monotonic() >= deadline:
                _say("another relay did not get the backend started within %gs" % config.start_timeout)
                return None, GONE
            time.sleep(0.02)
        sock, state = _checked(path, deadline)
        if state != GONE:
            return sock, state
        if _is_socket(path):
            # Nobody serves it: a fresh backend binds a new socket in its place.
            _say("the backend at %s is gone; starting a fresh one" % path)
            os.unlink(path)
        pid = spawn_backend(config, path)
        delay = 0.01
        while time.monotonic() < deadline:
            sock, state = _checked(path, deadline)
            if state != GONE:
                return sock, state
            if pid is not None and not _alive(pid):
                _say("backend exited during start-up; see %s.log" % path)
                return None, GONE
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        _say("backend did not start within %gs; see %s.log" % (config.start_timeout, path))
        return None, GONE
    finally:
        os.close(lock_fd)


# -- forwarding -------------------------------------------------------------------


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[posix.write(fd, view) :]


def _body_length(environ):
    raw = environ.get(b"CONTENT_LENGTH", b"").strip()
    if raw.isdigit():
        return int(raw)
    if b"chunked" in environ.get(b"HTTP_TRANSFER_ENCODING", b"").lower():
        return -1
    return 0


def _send_request(sock, environ):
    params = dict(environ)
    params[b"WSGATE_CGI_RELAY"] = b"1"
    sock.sendall(
        p.encode_begin_request(1) + p.encode_stream(p.PARAMS, 1, p.encode_pairs(params)) + p.encode_record(p.PARAMS, 1)
    )
    length = remaining = _body_length(environ)
    while remaining:
        try:
            chunk = posix.read(0, CHUNK if remaining < 0 else min(CHUNK, remaining))
        except OSError:
            chunk = b""
        if not chunk:
            if remaining > 0:
                # The backend refuses a body shorter than CONTENT_LENGTH.
                _say("the request body ended after %d of %d bytes" % (length - remaining, length))
            break
        if remaining > 0:
            remaining -= len(chunk)
        sock.sendall(p.encode_stream(p.STDIN, 1, chunk))
    sock.sendall(p.encode_record(p.STDIN, 1))


def forward(sock, environ):
    """Relay one request; returns the exit status."""
    try:
        _send_request(sock, environ)
    except OSError as exc:
        _say("sending to the backend failed: %s" % exc)
    reader = p.RecordReader()
    wrote = False
    try:
        while True:
            data = sock.recv(CHUNK)
            if not data:
                break
            for rec in reader.feed(data):
                if rec.type == p.STDOUT and rec.content:
                    _write_all(1, rec.content)
                    wrote = True
                elif rec.type == p.STDERR and rec.content:
                    _write_all(2, rec.content)
                elif rec.type == p.END_REQUEST:
                    return 0
    except (OSError, p.ProtocolError) as exc:
        _say("reading from the backend failed: %s" % exc)
    _say("the backend closed the connection before the end of the response")
    if not wrote:
        _write_all(1, b"Status: 502 Bad Gateway\r\nContent-Type: text/plain\r\n\r\nBad Gateway\n")
    return 1


def main(config):
    try:
        path = socket_path(config)
        sock = backend(config, path)
    except OSError as exc:
        _say("cannot use a backend: %s" % exc)
        sock = None
    if sock is None:
        _say("running the application in-process")
        if sys.flags.no_site:
            # A relay script started with python -S; the application needs site-packages.
            import site

            site.main()
        from . import cgi

        return cgi.serve(config, front_end="relay")
    try:
        return forward(sock, dict(posix.environ))
    finally:
        sock.close()
