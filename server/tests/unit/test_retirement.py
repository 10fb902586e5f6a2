"""A worker that stops (max-requests, SIGTERM, SIGHUP reload, request timeout) while
kept connections are busy answers every request it has run, and closes none of them:
it hands them to another worker, or serves them on when there is none.

Clients send requests back to back on kept connections (FCGI_KEEP_CONN, as
mod_proxy_fcgi with enablereuse=on), each request leaving a side effect (its id
appended to a file). Whatever the stop interrupts, every request that was sent
must have run once and been answered; no connection may be closed under a
client, which cannot know whether the request it sends at that moment is lost.
"""

import signal
import socket
import threading

from fcgiclient import Client, request
from support import PATIENCE, wait_until

CONNECTIONS = 6
AFTERWARDS = 20  # answers on every connection after the stop has done its work


class Hammer:
    """Requests back to back on kept connections until told to stop."""

    def __init__(self, path, ledger):
        self.ledger = ledger
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.answers = {i: [] for i in range(CONNECTIONS)}  # (rid, pid) per connection
        self.cut = {}  # connection: the request that got no answer
        # connected before anything can stop the daemon (SIGTERM removes its socket)
        self.clients = [Client(path) for _ in range(CONNECTIONS)]
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(CONNECTIONS)]
        for t in self.threads:
            t.start()

    def _run(self, index):
        client = self.clients[index]
        try:
            n = 0
            while not self.done.is_set():
                rid = "c%d-%d" % (index, n)
                n += 1
                try:
                    reply = client.request("/record?" + self.ledger, keep_conn=True, extra={"HTTP_X_ID": rid})
                except OSError:
                    reply = None
                if reply is None or reply.end is None:
                    with self.lock:
                        self.cut[index] = rid
                    return
                assert reply.status == 200 and reply.body == rid.encode(), (rid, reply.stdout)
                with self.lock:
                    self.answers[index].append((rid, int(reply.header("X-Pid"))))
        finally:
            client.close()

    def count(self, index):
        with self.lock:
            return len(self.answers[index])

    def go_on(self, more=AFTERWARDS):
        """Wait until every connection has had `more` answers from now on (or was cut)."""
        targets = {i: self.count(i) + more for i in range(CONNECTIONS)}
        assert wait_until(lambda: all(self.count(i) >= n or i in self.cut for i, n in targets.items()))

    def pids_since(self, marks):
        with self.lock:
            return {pid for i, n in marks.items() for _, pid in self.answers[i][n:]}

    def marks(self):
        return {i: self.count(i) for i in range(CONNECTIONS)}

    def finish(self):
        self.done.set()
        for t in self.threads:
            t.join(PATIENCE)
        answered = [rid for answers in self.answers.values() for rid, _ in answers]
        with open(self.ledger) as handle:
            ran = handle.read().split()
        assert sorted(ran) == sorted(answered), {
            "ran, not answered": sorted(set(ran) - set(answered)),
            "answered, not ran": sorted(set(answered) - set(ran)),
        }
        assert not self.cut, "connections closed under a request: %s" % self.cut
        return answered


def _started(hammer, count=40):
    """Wait until every connection has been answered a few times."""
    assert wait_until(lambda: all(hammer.count(i) >= count // CONNECTIONS for i in range(CONNECTIONS)))


def test_max_requests(daemon, tmp_path):
    d = daemon("--workers", "1", "--threads", "4", "--max-requests", "40")
    hammer = Hammer(d.path, str(tmp_path / "ledger"))
    _started(hammer)
    assert wait_until(lambda: d.log.count("max-requests 40 reached") >= 3)
    hammer.go_on()
    answered = hammer.finish()
    assert len({pid for answers in hammer.answers.values() for _, pid in answers}) >= 3
    assert len(answered) >= 120
    assert request(d.path, "/record?" + hammer.ledger, extra={"HTTP_X_ID": "fresh"}).status == 200


def test_sighup_reload(daemon, tmp_path):
    d = daemon("--workers", "1", "--threads", "4")
    hammer = Hammer(d.path, str(tmp_path / "ledger"))
    _started(hammer)
    old = request(d.path, "/pid").body
    d.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "reload complete" in d.log)
    assert wait_until(lambda: ("worker %s exited" % old.decode()) in d.log)
    hammer.go_on(2)  # an answer the old worker sent may still be on its way to a client thread
    marks = hammer.marks()
    hammer.go_on()
    # the old worker is gone, its connections went on with the new one
    assert hammer.pids_since(marks) == {int(request(d.path, "/pid").body)}, (hammer.pids_since(marks), d.log[-3000:])
    hammer.finish()
    assert d.proc.poll() is None


def test_request_timeout(daemon, tmp_path):
    d = daemon("--workers", "1", "--threads", "4", "--request-timeout", "0.5")
    hammer = Hammer(d.path, str(tmp_path / "ledger"))
    _started(hammer)
    old = int(request(d.path, "/pid").body)
    assert request(d.path, "/sleep", extra={"QUERY_STRING": "3"}).status == 504
    assert wait_until(lambda: "worker stopping (request timeout)" in d.log)
    assert wait_until(lambda: ("worker %d exited" % old) in d.log)
    hammer.go_on(2)  # an answer the old worker sent may still be on its way to a client thread
    marks = hammer.marks()
    hammer.go_on()
    assert old not in hammer.pids_since(marks)
    hammer.finish()


def test_sigterm_serves_kept_connections_until_the_peer_closes(daemon, tmp_path):
    # No other worker will serve: the stopping one serves its kept connections on.
    d = daemon("--workers", "1", "--threads", "4", "--keep-timeout", str(PATIENCE))
    hammer = Hammer(d.path, str(tmp_path / "ledger"))
    _started(hammer)
    d.proc.send_signal(signal.SIGTERM)
    assert wait_until(lambda: "worker stopping (SIGTERM)" in d.log)
    hammer.go_on()
    hammer.finish()  # the clients close their connections
    assert d.proc.wait(PATIENCE) == 0


def test_sigterm_closes_kept_connections_idle_past_keep_timeout(daemon, tmp_path):
    d = daemon("--workers", "1", "--threads", "2", "--keep-timeout", "0.3")
    client = Client(d.path, timeout=PATIENCE)
    try:
        assert client.request("/pid", keep_conn=True).status == 200
        d.proc.send_signal(signal.SIGTERM)
        # idle since its answer: closed once that is longer ago than --keep-timeout
        client.sock.settimeout(PATIENCE)
        try:
            assert client.sock.recv(1) == b""
        except ConnectionResetError:
            pass
        except socket.timeout:
            raise AssertionError("the idle kept connection was not closed") from None
    finally:
        client.close()
    assert d.proc.wait(PATIENCE) == 0
