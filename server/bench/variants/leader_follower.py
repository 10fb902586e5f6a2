"""A leader/follower worker for `wsgate fastcgi`, to measure against wsgate's Worker.

As in mod_wsgi's daemon mode, the request threads take turns in accept():
the thread that holds a process-wide lock waits in a blocking accept() on the
listening socket (shared by the worker processes; the kernel hands a new
connection to one waiter), releases the lock once it has a connection, and
then reads, runs and answers that connection's requests itself until the peer
closes it or a request does not ask to keep it (FCGI_KEEP_CONN); then it
queues for the lock again. wsgate's Worker instead has its threads wait on
one epoll that holds the listening socket and the idle kept connections.

Run it in place of `wsgate`, with the same arguments:

    python server/bench/variants/leader_follower.py fastcgi --app MODULE:CALLABLE --bind unix:PATH ...

The main thread keeps the base Worker's duties: signals, the master's
lifeline, the scoreboard and request deadlines. What it does not keep:

- no overload queue: --queue is ignored; a connection waits in the listen
  backlog until a thread is back in accept(), and is never answered 503;
- an idle kept connection holds its thread, so with enablereuse=on a web
  server that opens more connections than workers x threads leaves the
  extra ones unanswered in the backlog until a kept one closes;
- a slow upload holds its thread too (blocking recv(), no parking);
- blocking accept() and recv() wake every WAKE_EVERY seconds (SO_RCVTIMEO)
  to look for a stop, so a stop is noticed that much later, and every new
  connection costs one more setsockopt than in the base worker.
"""

import collections
import errno
import os
import select
import socket
import sys
import threading
import time

from wsgate import fastcgi, log
from wsgate import protocol as p
from wsgate.cli import main as wsgate_main
from wsgate.connection import Connection
from wsgate.scoreboard import STOPPING
from wsgate.worker import _TIMEVAL, TICK, Worker, _limit_send_time

WAKE_EVERY = 0.5
FRESH_CONNECTION_GRACE = 2.0
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def _wake_every(sock, seconds):
    """Make a blocking accept() or recv() on sock fail with EAGAIN after seconds."""
    whole = int(seconds)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _TIMEVAL.pack(whole, int((seconds - whole) * 1e6)))


def _has_waiting(listener):
    poller = select.poll()
    poller.register(listener, select.POLLIN)
    return bool(poller.poll(0))


class LeaderFollowerWorker(Worker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Both guarded by listener_lock, the lock the threads take turns on.
        self.listener_open = True
        self.handoff = collections.deque()

    def _start_threads(self):
        # The listener's flags are shared with the other workers, all of this class.
        self.listener.setblocking(True)
        _wake_every(self.listener, WAKE_EVERY)
        for _ in range(self.threads):
            threading.Thread(target=self._take_turns, daemon=True).start()

    def _keep_house(self, now):
        self._check_deadlines(now)
        if self.stopping and self.listener_open:
            self._close_listener_if_free()
        self._publish()
        return bool(self.stopping) and self._drained()

    def stop(self, reason):
        """Stop taking connections; callable from any thread.

        Only a holder of listener_lock closes the listener, and the thread in
        accept() holds it for up to WAKE_EVERY, so this only asks for it.
        """
        with self.lock:
            if self.stopping:
                return
            self.stopping = reason
            self.settings.retiring = True
        log.info("worker stopping (%s) after %d requests", reason, self.handled)
        self._publish(STOPPING)
        try:
            os.write(self.wake_w, b".")
        except OSError:
            pass

    def _timeout(self):
        timeout = 0.2 if self.stopping else TICK
        with self.lock:
            deadlines = [req.deadline for req in self.running.values() if req.deadline is not None]
        if deadlines:
            timeout = min(timeout, max(0.0, min(deadlines) - time.monotonic()))
        return timeout

    def _drained(self):
        return not self.listener_open and super()._drained()

    def _close_listener_if_free(self):
        # For when no thread comes back to the lock: all busy, or stuck past their deadline.
        if self.listener_lock.acquire(blocking=False):
            try:
                if self.listener_open:
                    self._close_listener()
            finally:
                self.listener_lock.release()

    # -- with listener_lock held -------------------------------------------------

    def _close_listener(self):
        """On SIGTERM, first take what waits in the backlog, as the base worker does on a stop."""
        if self.stopping == "SIGTERM":
            while _has_waiting(self.listener):
                conn = self._accept()
                if conn is None:
                    break
                self.handoff.append(conn)
        self.listener_open = False
        self.listener_fd = -1
        try:
            self.listener.close()
        except OSError:
            pass

    def _accept(self):
        """A new Connection, or None when accept() gave up (WAKE_EVERY) or failed."""
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in _OUT_OF_RESOURCES:
                log.error("cannot accept: %s", exc)
                # Still holding the lock, so that no other thread spins on the same error.
                time.sleep(0.5)
            return None
        allowed = self.settings.allowed_peers
        if allowed is not None and sock.family != socket.AF_UNIX:
            try:
                peer = sock.getpeername()[0] if sock.family in (socket.AF_INET, socket.AF_INET6) else None
            except OSError:
                peer = None  # gone already
            if peer not in allowed:
                log.warn("refusing connection from %s (not in FCGI_WEB_SERVER_ADDRS)", peer)
                sock.close()
                return None
        conn = Connection(sock, self.settings)
        conn.accepted_at = time.monotonic()
        conn.served = 0
        # Before the lock is released: the main thread may not find us drained
        # while a connection is accepted but not yet known.
        with self.lock:
            self.connections[sock.fileno()] = conn
        return conn

    # -- request threads -----------------------------------------------------------

    def _take_turns(self):
        while True:
            with self.listener_lock:
                if self.stopping and self.listener_open:
                    self._close_listener()
                if self.handoff:
                    conn = self.handoff.popleft()
                elif self.listener_open:
                    conn = self._accept()
                else:
                    return
            if conn is None:
                continue
            try:
                _limit_send_time(conn.sock)
                _wake_every(conn.sock, WAKE_EVERY)
                self._follow(conn)
            except Exception:
                # A bug of ours must not cost the worker a thread, nor keep it from draining.
                log.exception("closing connection after an internal error")
                self._close(conn)

    def _follow(self, conn):
        """Serve conn's requests on this thread until it is closed or not to be kept."""
        while True:
            try:
                events = conn.receive()
            except p.ProtocolError as exc:
                log.warn("closing connection: %s", exc)
                events = None
            if events is None:
                self._close(conn)
                return
            if not events and self.stopping and self._idle_to_close(conn):
                self._close(conn)
                return
            for kind, req in events:
                if kind != "run":
                    if req.counts:
                        self._count()
                elif self._run(conn, req):
                    conn.served += 1
                else:
                    return  # timed out: answered by the main thread, which shut the socket down
            if conn.closing or conn.closed:
                self._close(conn)
                return

    @staticmethod
    def _idle_to_close(conn):
        # As the base worker's _close_idle: a fresh connection may have its first request on the way.
        return conn.idle and (conn.served or time.monotonic() - conn.accepted_at > FRESH_CONNECTION_GRACE)


def main(argv=None):
    """`wsgate` with this worker in place of the one `wsgate fastcgi` starts."""
    fastcgi.Worker = LeaderFollowerWorker
    return wsgate_main(argv)


if __name__ == "__main__":
    sys.exit(main())
