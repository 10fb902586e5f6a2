"""Apache-style log lines on stderr: one write per event, every line prefixed."""

import os
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
    return "%s.%06d" % (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)),
                        int(now % 1 * 1000000))


def _write(text):
    data = text.encode("utf-8", "backslashreplace")
    try:
        while data:
            data = data[os.write(2, data):]
    except OSError:
        pass


def log(level, message, *args):
    if LEVELS[level] > _threshold:
        return
    if args:
        message = message % args
    prefix = "[%s] [wsgate:%s] [pid %d] " % (_stamp(), level, os.getpid())
    _write("".join(prefix + line + "\n" for line in message.rstrip("\n").split("\n")))


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


def exception(message, *args, exc_info=None):
    """Log an error with the current (or given) traceback as one event."""
    import traceback

    if args:
        message = message % args
    exc_info = exc_info or sys.exc_info()
    text = "".join(traceback.format_exception(*exc_info))
    log("error", "%s\n%s", message, text)


class ErrorStream:
    """wsgi.errors: text written by the application, logged line by line."""

    def __init__(self):
        self._pending = ""

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("wsgi.errors.write() takes str, not %s" % type(text).__name__)
        text = self._pending + text
        head, sep, self._pending = text.rpartition("\n")
        if sep:
            log("error", "%s", head)
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if self._pending:
            log("error", "%s", self._pending)
            self._pending = ""
