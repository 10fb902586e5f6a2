"""Apache-style log lines on stderr: one write per event, every line prefixed."""

import posix
import sys
import time

LEVELS = {"debug": 7, "info": 6, "notice": 5, "warn": 4, "error": 3, "crit": 2}
_threshold = LEVELS["notice"]


def set_level(name):
    global _threshold
    _threshold = LEVELS[name]


def enabled(level):
    return LEVELS[level] <= _threshold


def _stamp():
    now = time.time()
    return "%s.%06d" % (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)), int(now % 1 * 1000000))


def _write(data):
    try:
        while data:
            data = data[posix.write(2, data) :]
    except OSError:
        pass


def format_event(level, message, args=()):
    """The bytes of one log event, or None when level is below the threshold."""
    if LEVELS[level] > _threshold:
        return None
    if args:
        message = message % args
    prefix = "[%s] [wsgate:%s] [pid %d] " % (_stamp(), level, posix.getpid())
    text = "".join(prefix + line + "\n" for line in message.rstrip("\n").split("\n"))
    return text.encode("utf-8", "backslashreplace")


def log(level, message, *args):
    data = format_event(level, message, args)
    if data is not None:
        _write(data)


def debug(message, *args):
    log("debug", message, *args)


def info(message, *args):
    log("info", message, *args)


def notice(message, *args):
    log("notice", message, *args)


def warn(message, *args):
    log("warn", message, *args)


def error(message, *args):
    log("error", message, *args)


def _with_traceback(message, args, exc_info):
    import traceback

    if args:
        message = message % args
    exc_info = exc_info or sys.exc_info()
    return "%s\n%s" % (message, "".join(traceback.format_exception(*exc_info)))


def exception(message, *args, exc_info=None):
    """Log an error with the current (or given) traceback as one event."""
    log("error", "%s", _with_traceback(message, args, exc_info))


class RequestLog:
    """The log of one request: events go to stderr and to copy(bytes) as well.

    copy hands them to the web server (FCGI_STDERR), which logs them with the
    request; it must not raise.
    """

    def __init__(self, copy):
        self._copy = copy

    def log(self, level, message, *args):
        data = format_event(level, message, args)
        if data is not None:
            _write(data)
            self._copy(data)

    def info(self, message, *args):
        self.log("info", message, *args)

    def error(self, message, *args):
        self.log("error", message, *args)

    def exception(self, message, *args, exc_info=None):
        self.log("error", "%s", _with_traceback(message, args, exc_info))


class ErrorStream:
    """wsgi.errors: text written by the application, logged line by line."""

    def __init__(self, target=None):
        self._log = log if target is None else target.log
        self._pending = ""

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("wsgi.errors.write() takes str, not %s" % type(text).__name__)
        head, sep, self._pending = (self._pending + text).rpartition("\n")
        if sep:
            self._log("error", "%s", head)
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if self._pending:
            self._log("error", "%s", self._pending)
            self._pending = ""
