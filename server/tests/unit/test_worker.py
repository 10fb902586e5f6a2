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
    assert answered(read_reply(peer)) and conn.parked and conn.served == 2


def test_stopping_closes_an_idle_parked_connection(stepped):
    worker, conn, peer = stepped
    peer.sendall(request_bytes("/one"))
    worker._drive(conn, fresh=True)
    assert answered(read_reply(peer))
    worker.stop("test")
    worker._close_idle(0.0)
    assert conn.closed and worker._drained()
    assert peer.recv(1) == b""


def test_stopping_serves_a_request_already_waiting_on_a_parked_connection(stepped):
    worker, conn, peer = stepped
    peer.sendall(request_bytes("/one"))
    worker._drive(conn, fresh=True)
    assert answered(read_reply(peer))
    peer.sendall(request_bytes("/two"))
    worker.stop("test")
    worker._close_idle(0.0)
    assert not conn.closed and not worker._drained()
    assert claim_next(worker) is conn
    worker._drive(conn)
    assert answered(read_reply(peer))
    # the answer of the last request closes the connection
    assert conn.closed and worker._drained()
    assert peer.recv(1) == b""


def test_stopping_never_closes_a_connection_under_the_thread_answering_on_it(stepped):
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
    # the main thread stops the worker while the answer goes out
    worker.stop("test")
    worker._close_idle(0.0)
    assert not conn.closed and not worker._drained()
    release.set()
    thread.join(5)
    assert answered(read_reply(peer))
    # kept when that answer was decided, so it waits parked for the next close_idle
    worker._close_idle(0.0)
    assert conn.closed and worker._drained()
