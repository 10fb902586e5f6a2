"""The worker's threads and main loop, stepped by hand through the orders of events that can lose answers."""

import socket
import threading

import pytest
from fcgiclient import cgi_params
from support import PATIENCE

from wsgate import protocol as p
from wsgate.connection import Settings
from wsgate.worker import Worker


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def request_bytes(path):
    params = p.encode_pairs({k.encode(): v.encode() for k, v in cgi_params(path).items()})
    return (
        p.encode_begin_request(1, flags=p.KEEP_CONN)
        + p.encode_stream(p.PARAMS, 1, params)
        + p.encode_record(p.PARAMS, 1)
        + p.encode_record(p.STDIN, 1)
    )


def read_reply(peer):
    """The records of one answer, up to END_REQUEST; [] at EOF."""
    reader = p.RecordReader()
    records = []
    while True:
        data = peer.recv(65536)
        if not data:
            return records
        records += reader.feed(data)
        if records and records[-1].type == p.END_REQUEST:
            return records


def answered(records):
    return (
        bool(records)
        and records[-1].type == p.END_REQUEST
        and b"".join(r.content for r in records if r.type == p.STDOUT).endswith(b"\r\n\r\nok")
    )


@pytest.fixture
def stepped(tmp_path):
    """A worker whose threads and main loop are run step by step by the test, and a peer connected to it."""
    path = str(tmp_path / "l.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(4)
    worker = Worker(listener, app, Settings(max_body=1024, multithread=True), threads=2, max_requests=100)
    worker.listener.setblocking(False)
    worker._listen()
    peer = socket.socket(socket.AF_UNIX)
    peer.settimeout(5)
    peer.connect(path)
    conn = worker._accept()
    yield worker, conn, peer
    peer.close()
    conn.close()
    worker.poller.close()


def claim_next(worker):
    """What a free thread does: take the next event of the epoll."""
    events = worker.poller.poll(5, 1)
    assert events
    return worker._claim(events[0][0])


def test_a_kept_connection_waits_parked_and_is_served_again(stepped):
    worker, conn, peer = stepped
    peer.sendall(request_bytes("/one"))
    worker._drive(conn, fresh=True)
    assert answered(read_reply(peer)) and conn.parked
    peer.sendall(request_bytes("/two"))
    assert claim_next(worker) is conn and not conn.parked
    worker._drive(conn)
    assert answered(read_reply(peer)) and conn.parked


@pytest.fixture
def master_end(stepped):
    """The master's end of the worker's channel."""
    worker = stepped[0]
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.setblocking(False)
    worker.channel = theirs
    yield ours
    ours.close()
    theirs.close()


def handed(master_end):
    """The connection the worker handed to the master, as a socket of ours."""
    master_end.settimeout(PATIENCE)
    kind, fds, _, _ = socket.recv_fds(master_end, 16, 4)
    assert kind == b"H" and len(fds) == 1
    return socket.socket(fileno=fds[0])


def test_stopping_hands_over_an_idle_parked_connection(stepped, master_end):
    worker, conn, peer = stepped
    peer.sendall(request_bytes("/one"))
    worker._drive(conn, fresh=True)
    assert answered(read_reply(peer))
    worker.stop("test")
    worker._release_idle(conn.last_active)
    assert conn.closed and not worker._drained()  # not before the master has passed it on
    # the same connection, open: what the peer sends next reaches whoever took it
    taken = handed(master_end)
    master_end.send(b"T1")
    worker._adopt()
    assert worker._drained()
    peer.sendall(request_bytes("/two"))
    taken.settimeout(PATIENCE)
    assert taken.recv(65536).startswith(p.encode_begin_request(1, flags=p.KEEP_CONN))
    taken.close()


def test_stopping_hands_over_a_connection_once_its_answer_is_sent(stepped, master_end):
    worker, conn, peer = stepped
    peer.sendall(request_bytes("/one"))
    worker._drive(conn, fresh=True)
    assert answered(read_reply(peer))
    peer.sendall(request_bytes("/two"))
    claimed = claim_next(worker)
    sending, release = threading.Event(), threading.Event()
    send_locked = conn._send_locked

    def slow_send(data):
        sending.set()
        release.wait(5)
        send_locked(data)

    conn._send_locked = slow_send
    thread = threading.Thread(target=worker._drive, args=(claimed,))
    thread.start()
    assert sending.wait(PATIENCE)
    # the main thread stops the worker while the answer goes out: nothing is taken from that thread
    worker.stop("test")
    worker._release_idle(conn.last_active)
    assert not conn.closed and not worker._drained()
    release.set()
    thread.join(5)
    assert answered(read_reply(peer))
    # the thread itself hands it over after the answer
    assert conn.closed and not worker._drained()
    handed(master_end).close()
    master_end.send(b"T1")
    worker._adopt()
    assert worker._drained()


def test_connections_nobody_takes_come_back_to_stay(stepped, master_end):
    worker, conn, peer = stepped
    peer.sendall(request_bytes("/one"))
    worker._drive(conn, fresh=True)
    assert answered(read_reply(peer))
    worker.stop("test")
    worker._release_idle(conn.last_active)
    taken = handed(master_end)
    socket.send_fds(master_end, [b"R"], [taken.fileno()])
    taken.close()
    worker._adopt()
    assert not worker._drained()
    (back,) = worker.connections.values()
    assert not back.movable and back.parked
    # served here from now on, not handed over again
    peer.sendall(request_bytes("/two"))
    assert claim_next(worker) is back
    worker._drive(back)
    assert answered(read_reply(peer)) and back.parked
    worker._release_idle(back.last_active)
    assert not back.closed
    back.close()


def test_stopping_alone_serves_a_kept_connection_until_idle_past_keep_timeout(stepped):
    worker, conn, peer = stepped
    peer.sendall(request_bytes("/one"))
    worker._drive(conn, fresh=True)
    assert answered(read_reply(peer))
    worker.stop("test")  # no channel: no other worker to take it
    worker._release_idle(conn.last_active + worker.keep_timeout / 2)
    assert not conn.closed and not worker._drained()
    # still served, and kept
    peer.sendall(request_bytes("/two"))
    assert claim_next(worker) is conn
    worker._drive(conn)
    assert answered(read_reply(peer)) and conn.parked
    worker._release_idle(conn.last_active + worker.keep_timeout + 1)
    assert conn.closed and worker._drained()
    assert peer.recv(1) == b""


def test_stopping_alone_never_closes_a_connection_with_a_request_waiting(stepped):
    worker, conn, peer = stepped
    peer.sendall(request_bytes("/one"))
    worker._drive(conn, fresh=True)
    assert answered(read_reply(peer))
    peer.sendall(request_bytes("/two"))
    worker.stop("test")
    worker._release_idle(conn.last_active + worker.keep_timeout + 1)
    assert not conn.closed and not worker._drained()
    assert claim_next(worker) is conn
    worker._drive(conn)
    assert answered(read_reply(peer))
