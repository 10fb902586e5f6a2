"""A worker process: one event loop thread for sockets, a pool of request threads.

The event loop accepts connections, reads records, spools bodies and watches
deadlines; threads only run complete requests. That keeps idle keep-alive
connections (mod_proxy_fcgi enablereuse=on) from pinning threads, lets
ABORT_REQUEST and EOF be seen while the application runs, and gives request
timeouts without SIGALRM: an expired request is answered from here and the
worker retires, since its stuck thread cannot be killed.
"""

import errno
import os
import queue
import selectors
import signal
import socket
import struct
import threading
import time

from . import log
from . import protocol as p
from .connection import Connection, run_request
from .scoreboard import READY, STOPPING

LOOP_TICK = 1.0
ACCEPT_DEFER = 0.05
FRESH_CONNECTION_GRACE = 2.0
SOCKET_TIMEOUT = 300.0
_TIMEVAL = struct.Struct("@ll")


def _limit_send_time(sock):
    """Bound how long a send may block on a stalled peer.

    A socket timeout would do, but Python then polls before every recv and
    send; the kernel's send timeout costs nothing per call. Reads never
    block: the loop only reads what the selector reported, with MSG_DONTWAIT.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _TIMEVAL.pack(int(SOCKET_TIMEOUT), 0))
    except (OSError, AttributeError):
        sock.settimeout(SOCKET_TIMEOUT)


class Worker:
    def __init__(
        self,
        listener,
        app,
        settings,
        threads,
        max_requests=0,
        request_timeout=0.0,
        slot=None,
        lifeline=None,
        queue_size=None,
    ):
        self.listener = listener
        self.app = app
        self.settings = settings
        self.threads = threads
        self.capacity = threads + (threads if queue_size is None else queue_size)
        self.max_requests = max_requests
        self.request_timeout = request_timeout
        self.slot = slot
        self.lifeline = lifeline
        self.jobs = queue.SimpleQueue()
        self.done = queue.SimpleQueue()
        self.wake_pending = False
        self.connections = {}
        self.in_app = set()
        self.expired = set()
        self.handled = 0
        self.started = 0
        self.stopping = None
        self.stop_requested = False
        self.listening = False
        self.deferred = False
        self.relisten_at = None
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    # -- lifecycle ---------------------------------------------------------

    def install_signals(self):
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, lambda *_: os._exit(0))
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    def _on_sigterm(self, signum, frame):
        # Acted on at the top of the loop, not in the middle of an event.
        self.stop_requested = True

    def stop(self, reason):
        if self.stopping:
            return
        self.stopping = reason
        self.settings.retiring = True
        log.info("worker stopping (%s) after %d requests", reason, self.handled)
        if reason == "SIGTERM":
            self._accept_backlog()
        self._stop_listening()
        try:
            self.listener.close()
        except OSError:
            pass
        self._publish(state=STOPPING)

    def run(self):
        self.listener.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        if self.lifeline is not None:
            self.selector.register(self.lifeline, selectors.EVENT_READ, "lifeline")
        self._listen()
        for _ in range(self.threads):
            threading.Thread(target=self._thread, daemon=True).start()
        self._publish(state=READY)
        while True:
            if self.stop_requested:
                self.stop("SIGTERM")
            for key, _ in self.selector.select(self._timeout()):
                if key.data == "listener":
                    self._on_listener()
                elif key.data == "wake":
                    self._drain_wake()
                elif key.data == "lifeline":
                    # The master is gone: let a new one bind the socket, and
                    # finish what was accepted here.
                    self.selector.unregister(self.lifeline)
                    self.stop("master went away")
                else:
                    self._on_readable(key.data)
            self._collect_done()
            now = time.monotonic()
            self._check_deadlines(now)
            if self.relisten_at is not None and now >= self.relisten_at:
                self.relisten_at = None
                self._listen()
            if self.stopping:
                self._close_idle(now)
                if self._drained():
                    break
        log.info("worker exiting after %d requests", self.handled)
        return 0

    def _timeout(self):
        timeout = LOOP_TICK
        now = time.monotonic()
        if self.relisten_at is not None:
            timeout = min(timeout, max(0.0, self.relisten_at - now))
        for req in self.in_app:
            if req.deadline is not None and req not in self.expired:
                timeout = min(timeout, max(0.0, req.deadline - now))
        if self.stopping:
            timeout = min(timeout, 0.2)
        return timeout

    def _drained(self):
        """Nothing left to answer: every connection we accepted is closed."""
        return not (self.in_app - self.expired) and not self.connections

    def _publish(self, active=False, state=None):
        if self.slot is not None:
            self.slot.publish(len(self.in_app - self.expired), active, state)

    # -- accepting -------------------------------------------------------------

    def _listen(self):
        if not self.listening and not self.stopping and self.relisten_at is None:
            self.selector.register(self.listener, selectors.EVENT_READ, "listener")
            self.listening = True

    def _stop_listening(self):
        if self.listening:
            self.selector.unregister(self.listener)
            self.listening = False

    def _on_listener(self):
        if len(self.in_app) >= self.threads and not self.deferred:
            # All threads busy: leave the connection to an idle sibling, or to
            # our first free thread; if it is still waiting after a moment,
            # take it (queued, or answered 503 when the queue is full).
            self.deferred = True
            self._stop_listening()
            self.relisten_at = time.monotonic() + ACCEPT_DEFER
            return
        self.deferred = False
        self._accept()

    def _listen_if_free(self):
        if not self.listening and len(self.in_app) < self.threads:
            self.deferred = False
            self.relisten_at = None
            self._listen()

    def _accept(self):
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                log.error("cannot accept: %s", exc)
                self._stop_listening()
                self.relisten_at = time.monotonic() + 0.5
            return False
        allowed = self.settings.allowed_peers
        if allowed is not None and sock.family != socket.AF_UNIX:
            peer = sock.getpeername()[0] if sock.family in (socket.AF_INET, socket.AF_INET6) else None
            if peer not in allowed:
                log.warn("refusing connection from %s (not in FCGI_WEB_SERVER_ADDRS)", peer)
                sock.close()
                return True
        _limit_send_time(sock)
        conn = Connection(sock, self.settings)
        conn.accepted_at = time.monotonic()
        self.connections[conn.fileno()] = conn
        self.selector.register(sock, selectors.EVENT_READ, conn)
        return True

    def _accept_backlog(self):
        while self._accept():
            pass

    # -- connections -------------------------------------------------------------

    def _drain_wake(self):
        try:
            while len(os.read(self.wake_r, 512)) == 512:
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _on_readable(self, conn):
        try:
            events = conn.receive(socket.MSG_DONTWAIT)
        except p.ProtocolError as exc:
            log.warn("closing connection: %s", exc)
            events = None
        except Exception:
            log.exception("closing connection after an internal error")
            events = None
        if events is None:
            self._lost(conn)
            return
        for kind, req in events:
            if kind == "run":
                self._dispatch(req)
            else:
                self._ended(conn, req)

    def _lost(self, conn):
        """EOF or a broken stream: stop what runs there, close once it has stopped."""
        conn.closed = True
        self._forget(conn)
        if conn.running:
            if conn.request is not None:
                conn.request.aborted = True
        else:
            conn.close()

    def _forget(self, conn):
        if self.connections.pop(conn.sock.fileno(), None) is not None:
            self.selector.unregister(conn.sock)

    def _close(self, conn):
        self._forget(conn)
        conn.close()

    def _ended(self, conn, req):
        """A request was answered; keep or close its connection."""
        if req.counts:
            self.handled += 1
        conn.served += 1
        if (conn.closed or conn.closing) and not conn.running:
            self._close(conn)

    def _close_idle(self, now):
        """While stopping: close kept connections between requests.

        A request the peer has sent meanwhile is read and answered first; one
        sent after the close never reached us, and was not run.
        """
        for conn in list(self.connections.values()):
            # running: its answer may still be on the way, even once conn.request is None
            if conn.running or not conn.idle or conn.has_input():
                continue
            if conn.served or now - conn.accepted_at > FRESH_CONNECTION_GRACE:
                self._close(conn)

    # -- requests ----------------------------------------------------------------

    def _dispatch(self, req):
        conn = req.conn
        if len(self.in_app) >= self.capacity:
            conn.overloaded(req)
            conn.request = None
            req.counts = False
            self._ended(conn, req)
            return
        req.stage = "queued"
        if self.request_timeout:
            req.deadline = time.monotonic() + self.request_timeout
        self.in_app.add(req)
        conn.running += 1
        self._publish(active=True)
        self.jobs.put(req)
        # Counted when it starts: the worker stops accepting at once, so no
        # connection lands here that a retiring worker would not serve.
        self.started += 1
        if self.max_requests and self.started >= self.max_requests:
            self.stop("max-requests %d reached" % self.max_requests)

    def _thread(self):
        while True:
            req = self.jobs.get()
            if req.aborted or req.finished:
                req.conn.end_request(req)
            else:
                req.stage = "running"
                try:
                    run_request(req, self.app)
                except BaseException:
                    req.log.exception("%s: internal error", req.describe())
                    req.conn.fail(req, "500 Internal Server Error", 1)
            self.done.put(req)
            if not self.wake_pending:
                # One wake-up covers every request done before the loop collects.
                self.wake_pending = True
                try:
                    os.write(self.wake_w, b".")
                except OSError:
                    pass

    def _collect_done(self):
        self.wake_pending = False
        while True:
            try:
                req = self.done.get_nowait()
            except queue.Empty:
                return
            self.in_app.discard(req)
            conn = req.conn
            if req in self.expired:
                self.expired.discard(req)
                continue
            conn.running -= 1
            if conn.request is req:
                conn.request = None
            self._ended(conn, req)
            self._publish(active=True)
            self._listen_if_free()

    def _check_deadlines(self, now):
        for req in list(self.in_app):
            if req.deadline is None or req.deadline > now or req in self.expired:
                continue
            conn = req.conn
            req.log.error(
                "%s: request timed out after %gs; the worker will be recycled", req.describe(), self.request_timeout
            )
            # Before answering, so that the connection is not kept for another request.
            self.stop("request timeout")
            self.expired.add(req)
            # Once answered (under the connection's lock), its thread no longer writes there.
            conn.expire(req)
            conn.running -= 1
            self.handled += 1
            if (conn.closing or conn.closed) and not conn.running:
                self._close(conn)
