"""The master's pid file: written whole, locked while the master runs, removed at a clean exit.

The lock is a POSIX record lock (fcntl), which belongs to the master alone:
forked workers do not hold it, so it ends the moment the master does, and
`pkill -HUP -L -F FILE` signals only a process whose pid file is still
locked, never one whose pid was reused after a SIGKILL.
"""

import fcntl
import os


class PidFile:
    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.fd = None

    def write(self, pid):
        temporary = "%s.%d.tmp" % (self.path, pid)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, b"%d\n" % pid)
            os.replace(temporary, self.path)
        except BaseException:
            os.close(fd)
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise
        self.fd = fd

    def remove(self):
        """Remove the file, unless another master has replaced it since."""
        if self.fd is None:
            return
        try:
            if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
