"""The master process: forks workers, replaces them, reloads and stops them.

The master never imports the application, so a reload (SIGHUP) picks up new
code: new workers are forked and import it, and only once they are all ready
are the old ones told to finish their requests and exit. If the new code
fails to import, the old workers keep serving.

A worker that stops while the others go on (a reload, --max-requests, a
request timeout) hands its kept connections over instead of closing them:
it sends each one, between two requests, to the master over its channel (a
unix socket pair, SCM_RIGHTS), and the master passes it on to a worker that
serves on. Only the web server knows whether it is about to send on a kept
connection, so no worker closes one while the web server may still use it;
the web server sees the connection stay open and answered throughout.
"""

import os
import select
import signal
import socket
import time

from . import log
from .handover import RETURNED, receive_connections, send_connections, taken
from .scoreboard import READY, STOPPING, Scoreboard, Slot

EXIT_BOOT_FAILURE = 3
TICK = 0.5
FAST_STOP_GRACE = 1.0


class WorkerProcess:
    __slots__ = ("channel", "generation", "handing_over", "kill_at", "pid", "slot", "started", "was_ready")

    def __init__(self, pid, slot, generation, channel):
        self.pid = pid
        self.slot = slot
        self.generation = generation
        self.channel = channel
        self.started = time.monotonic()
        self.kill_at = None
        self.was_ready = False
        # It handed connections over: it is stopping, whatever its slot says yet.
        self.handing_over = False


class Supervisor:
    """boot(slot, lifeline, channel) runs in each forked worker and returns its exit status.

    lifeline is a file descriptor that becomes readable (EOF) when the master is gone;
    channel is the worker's end of its socket pair with the master, for handing over
    connections.
    """

    def __init__(self, boot, workers, graceful_timeout=30.0, idle_timeout=0.0, on_stop=None):
        self.boot = boot
        self.size = workers
        self.graceful_timeout = graceful_timeout
        self.idle_timeout = idle_timeout
        self.on_stop = on_stop
        self.board = Scoreboard(workers * 3 + 2)
        self.workers = {}
        self.generation = 0
        self.previous_generation = None
        self.stopping = False
        self.status = 0
        self.signals = []
        self.spawn_not_before = 0.0
        self.started = time.time()
        self.any_ready = False
        # Connections handed over that wait for a worker to take them: (sender pid, fds).
        self.handed = []
        self.next_receiver = 0

    # -- main loop ---------------------------------------------------------

    def run(self):
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        # Workers hold the read end; only we hold the write end, so it reads
        # EOF in every worker the moment we are gone, even by SIGKILL.
        self._lifeline_r, self._lifeline_w = os.pipe()
        signal.set_wakeup_fd(self._wake_w)
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signum, self._on_signal)
        log.notice("master started (pid %d), %d workers", os.getpid(), self.size)
        self._fill()
        while not (self.stopping and not self.workers):
            channels = {w.channel.fileno(): w for w in self.workers.values() if w.channel is not None}
            try:
                readable = select.select([self._wake_r, *channels], [], [], TICK)[0]
                if self._wake_r in readable:
                    while os.read(self._wake_r, 512):
                        pass
            except (BlockingIOError, InterruptedError):
                readable = []
            for fd in readable:
                if fd in channels:
                    self._collect(channels[fd])
            self._handle_signals()
            self._reap()
            self._track_readiness()
            self._kill_overdue()
            self._check_idle()
            self._fill()
            self._pass_on()
        log.notice("master exiting")
        return self.status

    def _on_signal(self, signum, frame):
        self.signals.append(signum)

    def _handle_signals(self):
        while self.signals:
            signum = self.signals.pop(0)
            if signum == signal.SIGHUP and not self.stopping:
                self.reload()
            elif signum == signal.SIGTERM:
                self.stop(graceful=True, reason="SIGTERM")
            elif signum == signal.SIGINT:
                self.stop(graceful=False, reason="SIGINT")

    # -- workers -------------------------------------------------------------

    def _free_slot(self):
        used = {w.slot for w in self.workers.values()}
        for index in range(self.board.slots):
            if index not in used:
                return index
        return None

    def spawn(self):
        index = self._free_slot()
        if index is None:
            return None
        self.board.reset(index)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                signal.set_wakeup_fd(-1)
                os.close(self._wake_r)
                os.close(self._wake_w)
                os.close(self._lifeline_w)
                ours.close()
                for other in self.workers.values():
                    if other.channel is not None:
                        other.channel.close()
                for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                    signal.signal(signum, signal.SIG_DFL)
                status = self.boot(Slot(self.board, index), self._lifeline_r, theirs)
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                log.exception("worker failed")
            finally:
                os._exit(status)
        theirs.close()
        ours.setblocking(False)
        self.workers[pid] = WorkerProcess(pid, index, self.generation, ours)
        log.info("started worker %d (generation %d)", pid, self.generation)
        return pid

    def _current(self):
        return [w for w in self.workers.values() if w.generation == self.generation]

    def _serving(self, worker):
        """Whether a worker of the current generation goes on serving (not stopping)."""
        return (
            worker.generation == self.generation
            and worker.kill_at is None
            and not worker.handing_over
            and self.board.read(worker.slot)[2] != STOPPING
        )

    def _fill(self):
        """Keep --workers workers serving: one that stops on its own (--max-requests, a
        request timeout) is replaced at once, so that its connections have somewhere to go."""
        if self.stopping or time.monotonic() < self.spawn_not_before:
            return
        for _ in range(self.size - sum(1 for w in self.workers.values() if self._serving(w))):
            if self.spawn() is None:
                break

    # -- connections handed over ---------------------------------------------

    def _tell_taken(self, sender, count):
        """The sender waits for its connections to be taken (or returned) before it exits."""
        worker = self.workers.get(sender)
        if worker is not None and worker.channel is not None:
            try:
                worker.channel.send(taken(count))
            except OSError:
                pass

    def _collect(self, worker):
        messages, still_open = receive_connections(worker.channel)
        for _, fds in messages:
            worker.handing_over = True
            self.handed.append((worker.pid, fds))
        if not still_open:
            worker.channel.close()
            worker.channel = None

    def _pass_on(self):
        """Give handed-over connections to a serving worker; return them to their sender
        when none will come (the master stops, or no worker of this generation is left)."""
        if not self.handed:
            return
        ready = [
            w
            for w in self.workers.values()
            if self._serving(w) and w.was_ready and w.channel is not None and not self.stopping
        ]
        waiting, self.handed = self.handed, []
        for sender, fds in waiting:
            targets = [w for w in ready if w.pid != sender]
            if targets:
                self.next_receiver = (self.next_receiver + 1) % len(targets)
                sent, _ = send_connections(targets[self.next_receiver].channel, fds)
                _close_all(fds[:sent])
                fds = fds[sent:]
                if sent:
                    self._tell_taken(sender, sent)
                if not fds:
                    continue
            # While fewer than --workers serve, _fill starts more.
            serving = [w for w in self.workers.values() if self._serving(w)]
            coming = len(serving) < self.size or any(w.pid != sender for w in serving)
            if coming and not self.stopping:
                self.handed.append((sender, fds))  # a worker is starting, or was busy: later
                continue
            back = self.workers.get(sender)
            sent = send_connections(back.channel, fds, RETURNED)[0] if back and back.channel else 0
            if sent < len(fds):
                log.warn("%d kept connections had nowhere to go; closing them", len(fds) - sent)
            _close_all(fds)

    def _signal(self, worker, signum):
        try:
            os.kill(worker.pid, signum)
        except ProcessLookupError:
            pass

    def _reap(self):
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            if worker.channel is not None:
                self._collect(worker)
                if worker.channel is not None:
                    worker.channel.close()
            code = (
                os.waitstatus_to_exitcode(status)
                if hasattr(os, "waitstatus_to_exitcode")
                else (os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status))
            )
            self._exited(worker, code)

    def _exited(self, worker, code):
        expected = self.stopping or worker.kill_at is not None
        how = "exit status %d" % code if code >= 0 else "signal %d" % -code
        if expected or code == 0:
            log.info("worker %d exited (%s)", worker.pid, how)
        else:
            log.error("worker %d died (%s)", worker.pid, how)
        if code == EXIT_BOOT_FAILURE and not self.stopping:
            if worker.generation == self.generation and self.previous_generation is not None:
                self._abort_reload()
            elif not self.any_ready:
                log.error("the application cannot be loaded; stopping")
                self.status = 1
                self.stop(graceful=True, reason="boot failure")
                return
        if time.monotonic() - worker.started < 1.0 and code != 0:
            self.spawn_not_before = time.monotonic() + 1.0

    def _track_readiness(self):
        for worker in self.workers.values():
            if not worker.was_ready and self.board.read(worker.slot)[2] == READY:
                worker.was_ready = True
                self.any_ready = True
        if self.previous_generation is None:
            return
        current = self._current()
        if len(current) >= self.size and all(w.was_ready for w in current):
            log.notice("reload complete: generation %d serving", self.generation)
            self._retire(lambda w: w.generation != self.generation)
            self.previous_generation = None

    def _retire(self, which, signum=signal.SIGTERM, grace=None):
        deadline = time.monotonic() + (self.graceful_timeout if grace is None else grace)
        for worker in list(self.workers.values()):
            if which(worker):
                if worker.kill_at is None or deadline < worker.kill_at:
                    worker.kill_at = deadline
                self._signal(worker, signum)

    def _kill_overdue(self):
        now = time.monotonic()
        for worker in list(self.workers.values()):
            if worker.kill_at is not None and now >= worker.kill_at:
                log.warn("worker %d did not finish in time; killing it", worker.pid)
                self._signal(worker, signal.SIGKILL)
                worker.kill_at = now + 3600

    def _check_idle(self):
        if not self.idle_timeout or self.stopping or self.previous_generation is not None:
            return
        last = self.started
        for worker in self.workers.values():
            activity, busy, _ = self.board.read(worker.slot)
            if busy:
                return
            last = max(last, activity)
        if time.time() - last >= self.idle_timeout:
            self.stop(graceful=True, reason="idle for %gs" % self.idle_timeout)

    # -- commands --------------------------------------------------------------

    def reload(self):
        if self.previous_generation is not None:
            log.warn("reload already in progress")
            return
        log.notice("reloading: starting generation %d", self.generation + 1)
        self.previous_generation = self.generation
        self.generation += 1
        self.spawn_not_before = 0.0
        self._fill()

    def _abort_reload(self):
        failed = self.generation
        log.error(
            "reload failed: new workers cannot load the application; keeping generation %d", self.previous_generation
        )
        self.generation = self.previous_generation
        self.previous_generation = None
        self._retire(lambda w: w.generation == failed, grace=2.0)

    def stop(self, graceful=True, reason=""):
        if self.stopping and graceful:
            return
        log.notice("stopping (%s)%s", reason, "" if graceful else ", not waiting for requests")
        self.stopping = True
        if self.on_stop is not None:
            self.on_stop()
            self.on_stop = None
        if graceful:
            self._retire(lambda w: True)
        else:
            self._retire(lambda w: True, signal.SIGINT, FAST_STOP_GRACE)


def _close_all(fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
