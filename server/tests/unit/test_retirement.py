"""A worker that stops (max-requests, SIGTERM, SIGHUP reload, request timeout) while
kept connections are busy answers every request it has run.

Clients send requests back to back on kept connections, each request leaving a
side effect (its id appended to a file). Whatever the stop interrupts, a
request that ran must have been answered; one that was not answered must not
have run.
"""

import signal
import threading

from fcgiclient import Client, request
from support import PATIENCE, wait_until

CONNECTIONS = 6
LIMIT = 2000


def _hammer(client, ledger, name, results):
    """Requests on one kept connection until the worker closes it."""
    answered = []
    unanswered = None
    try:
        for n in range(LIMIT):
            rid = "%s-%d" % (name, n)
            try:
                reply = client.request("/record?" + ledger, keep_conn=True, extra={"HTTP_X_ID": rid})
            except OSError:
                reply = None
            if reply is None or reply.end is None:
                unanswered = rid
                break
            assert reply.status == 200 and reply.body == rid.encode(), (rid, reply.stdout)
            answered.append(rid)
    finally:
        client.close()
        results.append((answered, unanswered))


def _ran(ledger):
    try:
        with open(ledger) as handle:
            return handle.read().split()
    except FileNotFoundError:
        return []


def _run_until_closed(path, ledger, trigger):
    results = []
    # connected before anything can stop the daemon (SIGTERM removes its socket)
    clients = [Client(path) for _ in range(CONNECTIONS)]
    threads = [
        threading.Thread(target=_hammer, args=(client, ledger, "c%d" % i, results), daemon=True)
        for i, client in enumerate(clients)
    ]
    for t in threads:
        t.start()
    trigger()
    for t in threads:
        t.join(30)
    assert len(results) == CONNECTIONS
    answered = [rid for done, _ in results for rid in done]
    ran = _ran(ledger)
    assert sorted(ran) == sorted(answered), {
        "ran, not answered": sorted(set(ran) - set(answered)),
        "answered, not ran": sorted(set(answered) - set(ran)),
    }
    # every connection was closed by the retiring worker, none ran out of requests
    assert all(unanswered is not None for _, unanswered in results)
    return answered


def _after_some_requests(ledger, count=40):
    """Wait until the worker about to stop has served every connection: one
    still in the listen backlog would go to the next worker, which never
    closes it."""
    names = {"c%d" % i for i in range(CONNECTIONS)}

    def served_all():
        ran = _ran(ledger)
        return len(ran) >= count and names <= {rid.rsplit("-", 1)[0] for rid in ran}

    assert wait_until(served_all)


def test_max_requests(daemon, tmp_path):
    d = daemon("--workers", "1", "--threads", "4", "--max-requests", "40")
    ledger = str(tmp_path / "ledger")
    answered = _run_until_closed(d.path, ledger, lambda: None)
    assert len(answered) >= 40
    assert wait_until(lambda: "max-requests 40 reached" in d.log)
    assert request(d.path, "/record?" + ledger, extra={"HTTP_X_ID": "fresh"}).status == 200


def test_sigterm(daemon, tmp_path):
    d = daemon("--workers", "1", "--threads", "4")
    ledger = str(tmp_path / "ledger")

    def trigger():
        _after_some_requests(ledger)
        d.proc.send_signal(signal.SIGTERM)

    _run_until_closed(d.path, ledger, trigger)
    assert d.proc.wait(PATIENCE) == 0


def test_sighup_reload(daemon, tmp_path):
    d = daemon("--workers", "1", "--threads", "4")
    ledger = str(tmp_path / "ledger")

    def trigger():
        _after_some_requests(ledger)
        d.proc.send_signal(signal.SIGHUP)

    _run_until_closed(d.path, ledger, trigger)
    assert wait_until(lambda: "reload complete" in d.log)
    assert request(d.path, "/record?" + ledger, extra={"HTTP_X_ID": "fresh"}).status == 200
    assert d.proc.poll() is None


def test_request_timeout(daemon, tmp_path):
    d = daemon("--workers", "1", "--threads", "4", "--request-timeout", "0.5")
    ledger = str(tmp_path / "ledger")
    slow = []

    def trigger():
        _after_some_requests(ledger)
        slow.append(request(d.path, "/sleep", extra={"QUERY_STRING": "3"}))

    _run_until_closed(d.path, ledger, trigger)
    assert slow[0].status == 504
    assert wait_until(lambda: "worker stopping (request timeout)" in d.log)
