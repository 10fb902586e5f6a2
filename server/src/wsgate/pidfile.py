"""The master's pid file: written whole, locked while the master runs, removed at a clean exit.

The lock (flock) tells a running master from the file a killed one left
behind: `pkill -HUP -L -F FILE` signals only a process whose pid file is
still locked.
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
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
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

    def forget(self):
        """In a forked worker: the lock belongs to the master alone."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

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
