"""A worker process: request threads that each serve a connection from start to end.

The threads wait together on one epoll: the listening socket (registered
EPOLLEXCLUSIVE, so that a new connection wakes one worker process, not all)
and the kept connections between two requests (EPOLLONESHOT, so that a
readable one goes to one thread). The thread an event wakes reads the
request, runs the application and writes the answer itself: nothing is
handed from thread to thread on the way, as in mod_wsgi's daemon mode.
A connection whose request is not complete after a short wait (a slow
upload) goes back to the epoll instead of holding its thread, and so does
an idle kept connection (mod_proxy_fcgi enablereuse=on).

The main thread keeps house: signals, the master's lifeline, the scoreboard,
request deadlines (an expired request is answered 504 from here and the
worker retires, since its stuck thread cannot be stopped), and overload:
when no thread has come free for a moment, it takes the waiting connections
itself and queues their requests for the next free thread (up to --queue),
answering 503 beyond that. It also takes the kept connections that the
master hands over from a worker that stops.

A worker that stops never closes a kept connection the web server may still
send on: it finishes the request in progress, then hands the connection to
the master for another worker (see supervisor.py). Where no other worker will
serve (the whole server stops), it keeps serving the connection until the web
server closes it, or until it has been idle longer than --keep-timeout, which
is set above the web server's own limit for idle connections (Apache's ttl=):
by then the web server will not use it again.
"""

import collections
import errno
import os
import select
import signal
import socket
import struct
import threading
import time

from . import log
from . import protocol as p
from .connection import Connection, run_request
from .handover import HANDED, RETURNED, TAKEN, receive_connections, send_connections, taken_count
from .scoreboard import READY, STOPPING

TICK = 0.25
ACCEPT_DEFER = 0.05
PARTIAL_WAIT = 0.002
KEEP_TIMEOUT = 10.0
SOCKET_TIMEOUT = 300.0
_TIMEVAL = struct.Struct("@ll")
_WAITING = select.EPOLLIN | select.EPOLLONESHOT
_ACCEPTING = select.EPOLLIN | select.EPOLLET


def _limit_send_time(sock):
    """Bound how long a send may block on a stalled peer.

    A socket timeout would do, but Python then polls before every recv and
    send; the kernel's send timeout costs nothing per call. Reads never
    block: they use MSG_DONTWAIT, after the epoll or a poll said so.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _TIMEVAL.pack(int(SOCKET_TIMEOUT), 0))
    except (OSError, AttributeError):
        sock.settimeout(SOCKET_TIMEOUT)


def _readable(sock, timeout):
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


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
        channel=None,
        keep_timeout=KEEP_TIMEOUT,
    ):
        self.listener = listener
        self.listener_fd = listener.fileno()
        self.app = app
        self.settings = settings
        self.threads = threads
        self.queue_size = threads if queue_size is None else queue_size
        self.max_requests = max_requests
        self.request_timeout = request_timeout
        self.slot = slot
        self.lifeline = lifeline
        # Our end of the socket pair with the master; None once it is gone.
        self.channel = channel
        # Connections sent to the master that it has not yet passed on or returned:
        # the worker is not drained until they are somewhere.
        self.in_transit = 0
        self.keep_timeout = keep_timeout
        # Guards the bookkeeping below; never held while a request runs.
        self.lock = threading.Lock()
        self.listener_lock = threading.Lock()
        self.poller = select.epoll()
        self.connections = {}
        self.running = {}
        self.expired = set()
        self.pending = collections.deque()
        self.waiting = [False] * threads
        self.free_since = time.monotonic()
        self.last_activity = time.time()
        self.started = 0
        self.handled = 0
        self.stopping = None
        self.stop_requested = False
        self.listening = False
        self.relisten_at = None
        self.wake_r, self.wake_w = os.pipe()
        self.queue_r, self.queue_w = os.pipe()
        for fd in (self.wake_r, self.wake_w, self.queue_r, self.queue_w):
            os.set_blocking(fd, False)

    # -- lifecycle ---------------------------------------------------------

    def install_signals(self):
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, lambda *_: os._exit(0))
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    def _on_sigterm(self, signum, frame):
        # Acted on by the main loop, not in the middle of whatever it was doing.
        self.stop_requested = True

    def run(self):
        self._start_threads()
        self._publish(READY)
        watched = select.poll()
        watched.register(self.wake_r, select.POLLIN)
        if self.lifeline is not None:
            watched.register(self.lifeline, select.POLLIN)
        if self.channel is not None:
            self.channel.setblocking(False)
            channel_fd = self.channel.fileno()
            watched.register(channel_fd, select.POLLIN)
        while True:
            try:
                readable = [fd for fd, _ in watched.poll(self._timeout() * 1000)]
            except InterruptedError:
                readable = []
            if self.wake_r in readable:
                self._drain(self.wake_r)
            if self.channel is not None and channel_fd in readable and not self._adopt():
                watched.unregister(channel_fd)
                self._lose_master()
            if self.lifeline in readable:
                # The master is gone: let a new one bind the socket, and
                # finish what was accepted here.
                watched.unregister(self.lifeline)
                self._lose_master()
                self.stop("master went away")
            if self.stop_requested:
                self.stop("SIGTERM")
            if self._keep_house(time.monotonic()):
                break
        log.info("worker exiting after %d requests", self.handled)
        return 0

    def _start_threads(self):
        self.listener.setblocking(False)
        self.poller.register(self.queue_r, select.EPOLLIN)
        self._listen()
        for index in range(self.threads):
            threading.Thread(target=self._serve, args=(index,), daemon=True).start()

    def _keep_house(self, now):
        """The main thread's round of duties; True once a stopping worker has nothing left to answer."""
        self._check_deadlines(now)
        if self.relisten_at is not None and now >= self.relisten_at:
            self.relisten_at = None
            self._listen()
        if self._saturated(now):
            self._take_overflow()
        self._publish()
        if self.stopping:
            self._release_idle(now)
            return self._drained()
        return False

    def stop(self, reason):
        """Stop taking requests; callable from any thread."""
        with self.lock:
            if self.stopping:
                return
            self.stopping = reason
        log.info("worker stopping (%s) after %d requests", reason, self.handled)
        if reason == "SIGTERM":
            self._accept_backlog()
        with self.listener_lock:
            self._stop_listening()
            self.listener_fd = -1
            try:
                self.listener.close()
            except OSError:
                pass
        self._publish(STOPPING)
        try:
            os.write(self.wake_w, b".")
        except OSError:
            pass

    def _timeout(self):
        now = time.monotonic()
        timeout = TICK
        if not any(self.waiting):
            # Every thread is busy: look again once the oldest has been for ACCEPT_DEFER.
            busy_for = now - self.free_since
            timeout = ACCEPT_DEFER - busy_for if busy_for < ACCEPT_DEFER else ACCEPT_DEFER
        with self.lock:
            deadlines = [req.deadline for req in self.running.values() if req.deadline is not None]
            deadlines += [req.deadline for _, req in self.pending if req.deadline is not None]
        if deadlines:
            timeout = min(timeout, max(0.0, min(deadlines) - now))
        if self.relisten_at is not None:
            timeout = min(timeout, max(0.0, self.relisten_at - now))
        if self.stopping:
            timeout = min(timeout, 0.2)
        return timeout

    def _drained(self):
        """Nothing left to answer: every connection we accepted is closed or with another worker."""
        with self.lock:
            return (
                not self.connections
                and not self.in_transit
                and not (set(self.running.values()) - self.expired)
                and not self.pending
            )

    def _lose_master(self):
        # What was in transit is gone with it; nothing will come back.
        with self.lock:
            self.channel = None
            self.in_transit = 0

    def _publish(self, state=None):
        if self.slot is not None:
            with self.lock:
                busy = len(set(self.running.values()) - self.expired) + len(self.pending)
            self.slot.publish(busy, self.last_activity, state)

    @staticmethod
    def _drain(fd):
        try:
            while len(os.read(fd, 512)) == 512:
                pass
        except (BlockingIOError, InterruptedError):
            pass

    # -- the listening socket ------------------------------------------------

    def _listen(self):
        with self.listener_lock:
            if self.listening or self.stopping:
                return
            self._register_listener()
            self.listening = True

    def _register_listener(self):
        """Put the listening socket (back) in the epoll; with listener_lock held.

        Edge-triggered, so that a new connection wakes one thread, not every
        thread waiting (level-triggered, each woken one would wake the next);
        exclusive, so that it wakes one worker process, the first in line that
        has a thread waiting. Registering again after each accept puts us at
        the end of that line, and reports any connection still waiting.
        """
        try:
            self.poller.register(self.listener, _ACCEPTING | getattr(select, "EPOLLEXCLUSIVE", 0))
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self.poller.register(self.listener, _ACCEPTING)  # kernel older than 4.5

    def _stop_listening(self):
        # With listener_lock held.
        if self.listening:
            self.poller.unregister(self.listener)
            self.listening = False

    def _accept(self):
        """A new Connection, or None when there is none to take."""
        with self.listener_lock:
            if not self.listening:
                return None
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.error("cannot accept: %s", exc)
                    self._stop_listening()
                    self.relisten_at = time.monotonic() + 0.5
                return None
            # To the end of the line: the next connection goes to another worker
            # with a thread waiting, so that new and kept connections spread.
            self.poller.unregister(self.listener)
            self._register_listener()
        allowed = self.settings.allowed_peers
        if allowed is not None and sock.family != socket.AF_UNIX:
            peer = sock.getpeername()[0] if sock.family in (socket.AF_INET, socket.AF_INET6) else None
            if peer not in allowed:
                log.warn("refusing connection from %s (not in FCGI_WEB_SERVER_ADDRS)", peer)
                sock.close()
                return None
        _limit_send_time(sock)
        conn = Connection(sock, self.settings)
        conn.last_active = time.monotonic()
        with self.lock:
            self.connections[sock.fileno()] = conn
        return conn

    def _accept_backlog(self):
        while True:
            conn = self._accept()
            if conn is None:
                return
            self._park(conn)

    # -- connections ---------------------------------------------------------

    def _claim(self, fd):
        """The parked connection on fd, now ours; None if another thread has it."""
        with self.lock:
            conn = self.connections.get(fd)
            if conn is None or not conn.parked:
                return None
            conn.parked = False
            return conn

    def _park(self, conn):
        """Give a connection back to the epoll until it is readable."""
        with self.lock:
            conn.parked = True
            fd = conn.fileno()
            if conn.registered:
                self.poller.modify(fd, _WAITING)
            else:
                self.poller.register(fd, _WAITING)
                conn.registered = True

    def _close(self, conn):
        with self.lock:
            fd = conn.fileno()
            if self.connections.get(fd) is conn:
                del self.connections[fd]
                if conn.registered:
                    self.poller.unregister(fd)
        conn.close()

    def _release_idle(self, now):
        """While stopping: hand over the connections that are between two requests, and
        close those kept here that have been idle longer than keep_timeout.

        A connection is handed over whole: nothing of its next request has been
        read here, so what the peer sends meanwhile waits in the socket for the
        worker that takes it.
        """
        handing, idle = [], []
        with self.lock:
            for conn in self.connections.values():
                if not conn.parked or not conn.idle:
                    continue
                if conn.movable and self.channel is not None:
                    conn.parked = False
                    handing.append(conn)
                elif now - conn.last_active > self.keep_timeout and not conn.has_input():
                    conn.parked = False
                    idle.append(conn)
        if handing:
            self._hand_over(handing)
        for conn in idle:
            self._close(conn)

    def _hand_over(self, conns):
        """Send claimed connections to the master; keep (park) those it cannot take.

        They stay in self.connections until sent: until then the worker is not
        drained, and may not exit with them.
        """
        with self.lock:
            for conn in conns:
                if conn.registered:
                    self.poller.unregister(conn.fileno())
                    conn.registered = False
        channel = self.channel
        with self.lock:
            # Counted before they go: the master may pass them on and say so at once.
            self.in_transit += len(conns)
        sent, later = send_connections(channel, [c.fileno() for c in conns]) if channel else (0, False)
        with self.lock:
            self.in_transit -= len(conns) - sent
        for conn in conns[:sent]:
            self._close(conn)
        if sent < len(conns):
            if not later:
                log.warn("cannot hand %d kept connections to the master; serving them here", len(conns) - sent)
                self._lose_master()
            self._keep(conns[sent:], reset=False)

    def _adopt(self):
        """Take the connections the master sent; False once the master is gone."""
        messages, still_open = receive_connections(self.channel)
        for data, fds in messages:
            kind = data[:1]
            with self.lock:
                if kind == TAKEN:
                    self.in_transit -= taken_count(data)
                elif kind == RETURNED:
                    self.in_transit -= len(fds)
            conns = []
            for fd in fds:
                try:
                    conns.append(Connection(socket.socket(fileno=fd), self.settings))
                except OSError:
                    os.close(fd)
            for conn in conns:
                # Ours to keep when nobody else will serve it.
                conn.movable = kind == HANDED
            self._keep(conns)
        return still_open

    def _keep(self, conns, reset=True):
        now = time.monotonic()
        with self.lock:
            for conn in conns:
                if reset:
                    conn.last_active = now
                self.connections[conn.fileno()] = conn
        for conn in conns:
            self._park(conn)

    # -- request threads -------------------------------------------------------

    def _serve(self, index):
        while True:
            try:
                self._serve_one(index)
            except Exception:
                # A bug of ours must not cost the worker a thread.
                log.exception("internal error in a request thread")
            self.free_since = time.monotonic()

    def _serve_one(self, index):
        """Wait for one piece of work (a queued request, or an epoll event) and do it."""
        work = self._next_pending()
        if work is not None:
            conn, req = work
            if self._run(conn, req):
                self._drive(conn, ran=True)
            return
        self.waiting[index] = True
        try:
            events = self.poller.poll(-1, 1)
        except InterruptedError:
            return
        finally:
            self.waiting[index] = False
        if not events:
            return
        fd = events[0][0]
        if fd == self.queue_r:
            # One byte a queued request: the others wake the other free threads.
            try:
                os.read(self.queue_r, 1)
            except (BlockingIOError, InterruptedError):
                pass
        elif fd == self.listener_fd:
            conn = self._accept()
            if conn is not None:
                self._drive(conn, fresh=True)
        else:
            conn = self._claim(fd)
            if conn is not None:
                self._drive(conn)

    def _next_pending(self):
        if not self.pending:  # the common case, without the lock
            return None
        with self.lock:
            return self.pending.popleft() if self.pending else None

    def _drive(self, conn, ran=False, fresh=False):
        """Read and serve conn until it must wait for the peer; then park or close it.

        Apache writes a request in a few pieces, back to back: for a piece
        that is missing this thread waits a little (PARTIAL_WAIT in all)
        rather than going through the epoll; a slower peer, a trickling
        upload say, is parked and costs no thread while it waits.
        """
        give_up = None
        while not ran:
            try:
                events = conn.receive(socket.MSG_DONTWAIT)
            except p.ProtocolError as exc:
                log.warn("closing connection: %s", exc)
                events = None
            except Exception:
                log.exception("closing connection after an internal error")
                events = None
            if events is None:
                self._close(conn)
                return
            for kind, req in events:
                if kind != "run":
                    if req.counts:
                        self._count()
                elif self._run(conn, req):
                    ran = True
                else:
                    return  # timed out: answered by the main thread, which keeps the socket
            if ran or conn.closing or conn.closed:
                break
            if events:
                continue
            if not (fresh or conn.request is not None or conn.reader.pending):
                break  # between requests: the next one is waited for in the epoll
            fresh = False
            now = time.monotonic()
            if give_up is None:
                give_up = now + PARTIAL_WAIT
            if now >= give_up or not _readable(conn.sock, give_up - now):
                break
        if conn.closing or conn.closed:
            self._close(conn)
            return
        if ran:
            conn.last_active = time.monotonic()
        if self.stopping and conn.movable and conn.idle and self.channel is not None:
            self._hand_over([conn])
            return
        self._park(conn)

    def _count(self):
        with self.lock:
            self.handled += 1

    def _run(self, conn, req):
        """Run req on this thread; False when it timed out and is no longer ours."""
        with self.lock:
            self.started += 1
            started = self.started
            if self.request_timeout and req.deadline is None:
                req.deadline = time.monotonic() + self.request_timeout
            self.running[threading.get_ident()] = req
        self.last_activity = time.time()
        if self.max_requests and started >= self.max_requests:
            self.stop("max-requests %d reached" % self.max_requests)
        req.stage = "running"
        try:
            if req.aborted or req.finished:
                conn.end_request(req)
            else:
                run_request(req, self.app, poll=lambda: self._poll(conn))
        except BaseException:
            req.log.exception("%s: internal error", req.describe())
            conn.fail(req, "500 Internal Server Error", 1)
        self.last_activity = time.time()
        with self.lock:
            del self.running[threading.get_ident()]
            if req in self.expired:
                self.expired.discard(req)
                return False
            self.handled += 1
        if conn.request is req:
            conn.request = None
        return True

    @staticmethod
    def _poll(conn):
        """Between chunks of a response: read what the peer sent (ABORT_REQUEST, EOF)."""
        if conn.closed:
            return
        try:
            if conn.receive(socket.MSG_DONTWAIT) is None:
                conn.closed = True
        except p.ProtocolError:
            conn.closed = True

    # -- the main thread: overload and deadlines ---------------------------------

    def _saturated(self, now):
        return not any(self.waiting) and now - self.free_since >= ACCEPT_DEFER

    def _take_overflow(self):
        """Every thread is busy and has been for a while: queue what waits, or answer 503."""
        try:
            events = self.poller.poll(0)
        except InterruptedError:
            return
        for fd, _ in events:
            if fd == self.queue_r:
                continue
            if fd == self.listener_fd:
                # One new connection each time: another worker with a thread
                # free takes the others, and keeps them if they are reused.
                conn = self._accept()
                if conn is not None:
                    self._queue_from(conn)
            else:
                conn = self._claim(fd)
                if conn is not None:
                    self._queue_from(conn)

    def _queue_from(self, conn):
        """Read what conn has (without waiting); queue a complete request or refuse it."""
        try:
            events = conn.receive(socket.MSG_DONTWAIT)
        except p.ProtocolError as exc:
            log.warn("closing connection: %s", exc)
            events = None
        if events is None:
            self._close(conn)
            return
        for kind, req in events:
            if kind != "run":
                if req.counts:
                    self._count()
                continue
            with self.lock:
                queued = len(self.pending) < self.queue_size
                if queued:
                    if self.request_timeout:
                        req.deadline = time.monotonic() + self.request_timeout
                    self.pending.append((conn, req))
            if queued:
                try:
                    os.write(self.queue_w, b".")
                except OSError:
                    pass
                return  # the connection is the queued request's until it is answered
            conn.overloaded(req)
            conn.request = None
        if conn.closing or conn.closed:
            self._close(conn)
        else:
            self._park(conn)

    def _check_deadlines(self, now):
        with self.lock:
            due = [req for req in self.running.values() if req not in self.expired and _due(req, now)]
            queued = [req for _, req in self.pending if _due(req, now)]
            if queued:
                self.pending = collections.deque(item for item in self.pending if item[1] not in queued)
            self.expired.update(due)
            self.handled += len(due) + len(queued)
        for req in due + queued:
            req.log.error(
                "%s: request timed out after %gs; the worker will be recycled", req.describe(), self.request_timeout
            )
            self.stop("request timeout")
            conn = req.conn
            # Its thread may still read it: the answer closes it, and it is kept by no one.
            conn.reusable = False
            # Answered under the connection's lock: its thread writes nothing there after this.
            conn.expire(req)
            if req in queued:
                self._close(conn)
            else:
                self._abandon(conn)

    def _abandon(self, conn):
        """Shut down the connection of a stuck thread; the fd stays open while the thread may use it."""
        with self.lock:
            self.connections.pop(conn.fileno(), None)
        conn.closed = True
        try:
            conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _due(req, now):
    return req.deadline is not None and req.deadline <= now
