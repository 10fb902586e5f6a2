"""Opening or inheriting the listening socket."""

import errno
import os
import socket
import stat

SD_LISTEN_FDS_START = 3


class ListenError(Exception):
    pass


def _unix(path, backlog, mode):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise ListenError("%s exists and is not a socket" % path)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: nobody listens there
        else:
            raise ListenError("%s is in use by another process" % path)
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o777)
    try:
        sock.bind(path)
    finally:
        os.umask(old_umask)
    os.chmod(path, mode)
    sock.listen(backlog)
    return sock


def _tcp(host, port, backlog):
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ListenError("cannot resolve %s: %s" % (host, exc)) from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(backlog)
    return sock


def _systemd(environ):
    pid = environ.get("LISTEN_PID")
    count = environ.get("LISTEN_FDS", "")
    if pid and pid != str(os.getpid()):
        raise ListenError("LISTEN_PID=%s is not this process (%d)" % (pid, os.getpid()))
    if not count.isdigit() or int(count) < 1:
        raise ListenError("bind systemd needs socket activation (LISTEN_FDS>=1), got %r" % count)
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        environ.pop(name, None)
    return inherit(SD_LISTEN_FDS_START)


def inherit(fd):
    """A listening socket passed to us as fd; ListenError when fd is none."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ListenError("fd %d is not a socket: %s" % (fd, exc)) from None
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError as exc:
        if exc.errno != errno.ENOPROTOOPT:
            raise
        listening = 1
    if not listening:
        sock.detach()
        raise ListenError("fd %d is a socket but not a listening one" % fd)
    return sock


def open_listener(bind, backlog=128, mode=0o660, environ=None):
    """(socket, path to unlink at exit or None) for a --bind value."""
    environ = os.environ if environ is None else environ
    try:
        if bind[0] == "unix":
            path = os.path.abspath(bind[1])
            return _unix(path, backlog, mode), path
        if bind[0] == "tcp":
            return _tcp(bind[1], bind[2], backlog), None
        return _systemd(environ), None
    except OSError as exc:
        raise ListenError("cannot listen on %s: %s" % (":".join(map(str, bind)), exc)) from None
