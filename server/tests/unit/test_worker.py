"""The worker's event loop, stepped by hand: the orders of events that once lost answers."""

import socket
import threading

import pytest
from fcgiclient import cgi_params

from wsgate import protocol as p
from wsgate.connection import Connection, Settings, run_request
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


@pytest.fixture
def stepped(tmp_path):
    """A worker with one kept connection, its loop run step by step by the test."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "l.sock"))
    listener.listen(1)
    worker = Worker(listener, app, Settings(max_body=1024, multithread=True), threads=2, max_requests=2)
    ours, peer = socket.socketpair()
    peer.settimeout(5)
    conn = Connection(ours, worker.settings)
    worker.connections[conn.fileno()] = conn
    worker.selector.register(ours, 1, conn)
    yield worker, conn, peer
    conn.close()
    peer.close()
    listener.close()


def serve_next_job(worker):
    """What a request thread does, minus the wake-up: run the next job, report it done."""
    req = worker.jobs.get_nowait()
    run_request(req, worker.app)
    worker.done.put(req)
    return req


def test_collecting_a_request_does_not_close_the_connection_under_the_next_one(stepped):
    worker, conn, peer = stepped
    peer.sendall(request_bytes("/one"))
    worker._on_readable(conn)
    serve_next_job(worker)
    assert read_reply(peer)[-1].type == p.END_REQUEST
    # The peer reuses the connection before the loop has collected the first
    # request; the second one is the last before max-requests.
    peer.sendall(request_bytes("/two"))
    worker._on_readable(conn)
    assert worker.stopping
    worker._collect_done()
    assert not conn.closed
    serve_next_job(worker)
    records = read_reply(peer)
    assert records and records[-1].type == p.END_REQUEST
    assert b"".join(r.content for r in records if r.type == p.STDOUT).endswith(b"\r\n\r\nok")
    worker._collect_done()
    assert conn.closed and worker._drained()


def test_collecting_a_request_does_not_close_the_connection_while_the_next_answer_goes_out(stepped):
    worker, conn, peer = stepped
    peer.sendall(request_bytes("/one"))
    worker._on_readable(conn)
    serve_next_job(worker)
    read_reply(peer)
    peer.sendall(request_bytes("/two"))
    worker._on_readable(conn)
    # The second answer is being sent (the connection is already marked
    # closing) when the loop collects the first request.
    sending, release = threading.Event(), threading.Event()
    send_locked = conn._send_locked

    def slow_send(data):
        sending.set()
        release.wait(5)
        send_locked(data)

    conn._send_locked = slow_send
    thread = threading.Thread(target=serve_next_job, args=(worker,))
    thread.start()
    assert sending.wait(5) and conn.closing
    worker._collect_done()
    assert not conn.closed
    release.set()
    thread.join(5)
    records = read_reply(peer)
    assert records and records[-1].type == p.END_REQUEST
    worker._collect_done()
    assert conn.closed and worker._drained()
