"""`wsgate fcgid`: a FastCGI program spawned by mod_fcgid.

mod_fcgid hands us a listening socket on fd 0 and routes one request at a
time to each process, so there are no threads here. It stops processes with
SIGTERM (then SIGKILL a few seconds later): during a request we finish it
first; between requests we exit once no connection waits to be accepted.
mod_fcgid takes a process off its idle list before connecting to it, so a
connection that waits when the signal comes was made before the decision
to stop us (a graceful restart of Apache stops every process, busy or not):
it is served, not dropped.
"""

import os
import select
import signal

from . import log
from . import protocol as p
from .connection import Connection, Settings, run_request
from .listeners import ListenError, inherit
from .loader import load_app, prepare_process

SOCKET_TIMEOUT = 300.0


class SingleServer:
    def __init__(self, listener, app, settings, max_requests=0):
        self.listener = listener
        self.app = app
        self.settings = settings
        self.max_requests = max_requests
        self.handled = 0
        self.stop_requested = False

    def _on_signal(self, signum, frame):
        # Acted on between requests: the one in progress is finished first.
        self.stop_requested = True
        self.settings.retiring = True

    def _done(self):
        return self.stop_requested or (self.max_requests and self.handled >= self.max_requests)

    def _count(self, req):
        if req.counts:
            self.handled += 1
            if self._done():
                self.settings.retiring = True

    def run(self):
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(signum, self._on_signal)
        self.listener.setblocking(False)
        while not self._done():
            select.select([self.listener, wake_r], [], [])
            if not self._done():
                self._serve_waiting(one=True)
        self._serve_waiting()
        log.info("exiting after %d requests", self.handled)
        return 0

    def _serve_waiting(self, one=False):
        """Serve the connections waiting to be accepted (one, or all), without waiting for more."""
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warn("cannot accept: %s", exc)
                return
            sock.setblocking(True)
            self._serve(sock)
            if one:
                return

    def _serve(self, sock):
        sock.settimeout(SOCKET_TIMEOUT)
        conn = Connection(sock, self.settings)
        try:
            while True:
                events = conn.receive()
                if events is None:
                    return
                for kind, req in events:
                    if kind == "run":
                        # counted before it runs, so that its answer closes a kept connection
                        self._count(req)
                        run_request(req, self.app, poll=lambda: self._poll(conn))
                        conn.request = None
                    else:
                        self._count(req)
                    if conn.closing or self._done():
                        return
        except p.ProtocolError as exc:
            log.warn("closing connection: %s", exc)
        finally:
            conn.close()

    def _poll(self, conn):
        if conn.closed:
            return
        readable, _, _ = select.select([conn.sock], [], [], 0)
        if readable:
            try:
                conn.receive()
            except p.ProtocolError:
                conn.closed = True


def main(config):
    try:
        listener = inherit(0)
    except ListenError as exc:
        log.error("wsgate fcgid must be started by mod_fcgid (listening socket on fd 0): %s", exc)
        return 2
    prepare_process(config)
    try:
        app = load_app(config)
    except BaseException:
        log.exception("cannot load the application")
        return 1
    settings = Settings(
        max_body=config.max_body,
        mount_prefix=config.mount_prefix,
        proxy_paths=False,
        multithread=False,
        multiprocess=True,
        front_end="fcgid",
    )
    return SingleServer(listener, app, settings, config.max_requests).run()
