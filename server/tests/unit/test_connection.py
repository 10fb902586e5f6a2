"""Connection output: STDERR copies and the race between a timeout and the first write."""

import socket
import threading

import pytest
from support import PATIENCE

from wsgate import protocol as p
from wsgate.connection import Connection, Request, Settings
from wsgate.response import ClientDisconnected, Response


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    conn = Connection(ours, Settings(max_body=1024))
    req = Request(conn, 1, keep_conn=True)
    conn.request = req
    yield conn, req, theirs
    conn.close()
    theirs.close()


def sent(conn, peer):
    """(stdout bytes, stderr bytes, record types) the peer received."""
    conn.close()
    data = b""
    while True:
        chunk = peer.recv(65536)
        if not chunk:
            break
        data += chunk
    records = p.RecordReader().feed(data)
    stdout = b"".join(r.content for r in records if r.type == p.STDOUT)
    stderr = b"".join(r.content for r in records if r.type == p.STDERR)
    return stdout, stderr, [r.type for r in records]


def test_stderr_lines_are_records_closed_before_end_and_dropped_after(pair):
    conn, req, peer = pair
    conn.send_stderr(req, b"first line\nsecond line\n")
    conn.send_stdout(req, b"Status: 200 OK\r\n\r\nbody")
    assert conn.end_request(req)
    conn.send_stderr(req, b"after the end\n")
    _stdout, stderr, types = sent(conn, peer)
    assert stderr == b"first line\nsecond line\n"
    assert types == [p.STDERR, p.STDERR, p.STDOUT, p.STDOUT, p.STDERR, p.END_REQUEST]


def test_no_stderr_record_without_stderr(pair):
    conn, req, peer = pair
    conn.end_request(req, head=b"Status: 204 No Content\r\n\r\n")
    assert sent(conn, peer)[2] == [p.STDOUT, p.STDOUT, p.END_REQUEST]


def test_timeout_as_the_first_write_starts_gives_the_504(pair):
    conn, req, peer = pair
    response = Response(lambda data: conn.send_stdout(req, data))
    response.start_response("200 OK", [("Content-Type", "text/plain")])
    send_stdout = conn.send_stdout

    def timeout_first(r, data):
        # The response counts its headers as sent before the bytes go out.
        assert response.headers_sent
        assert conn.expire(req)
        send_stdout(r, data)

    conn.send_stdout = timeout_first
    with pytest.raises(ClientDisconnected):
        response.write(b"body")
    stdout, _, types = sent(conn, peer)
    assert stdout.startswith(b"Status: 504 Gateway Timeout\r\n")
    assert stdout.count(b"Status:") == 1 and types[-1] == p.END_REQUEST


def test_timeout_during_the_first_write_lets_it_go_out_whole(pair):
    conn, req, peer = pair
    entered, release = threading.Event(), threading.Event()
    send_locked = conn._send_locked

    def slow_send(data):
        entered.set()
        release.wait(5)
        send_locked(data)

    conn._send_locked = slow_send
    writer = threading.Thread(target=conn.send_stdout, args=(req, b"Status: 200 OK\r\n\r\nthe body"))
    writer.start()
    assert entered.wait(PATIENCE)
    conn._send_locked = send_locked
    expired = []
    timer = threading.Thread(target=lambda: expired.append(conn.expire(req)))
    timer.start()
    timer.join(0.2)
    assert timer.is_alive()  # the timeout waits for the write under way
    release.set()
    writer.join(5)
    timer.join(5)
    assert expired == [True]
    stdout, _, types = sent(conn, peer)
    assert stdout == b"Status: 200 OK\r\n\r\nthe body"
    assert types[-1] == p.END_REQUEST


def test_fail_after_output_only_ends_the_request(pair):
    conn, req, peer = pair
    conn.send_stdout(req, b"Status: 200 OK\r\n\r\npart")
    assert conn.fail(req, "500 Internal Server Error", 1)
    assert not conn.fail(req, "500 Internal Server Error", 1)
    stdout, _, types = sent(conn, peer)
    assert stdout == b"Status: 200 OK\r\n\r\npart"
    assert types.count(p.END_REQUEST) == 1


def test_held_output_goes_out_with_the_end_in_one_write(pair):
    conn, req, peer = pair
    writes = []
    send_locked = conn._send_locked

    def counting(data):
        writes.append(data)
        send_locked(data)

    conn._send_locked = counting
    conn.send_stdout(req, b"Status: 200 OK\r\nContent-Length: 4\r\n\r\nbody", last=True)
    assert writes == []
    assert conn.end_request(req)
    stdout, _, types = sent(conn, peer)
    assert len(writes) == 1
    assert stdout == b"Status: 200 OK\r\nContent-Length: 4\r\n\r\nbody"
    assert types == [p.STDOUT, p.STDOUT, p.END_REQUEST]


def test_output_after_held_output_sends_both_in_order(pair):
    conn, req, peer = pair
    conn.send_stdout(req, b"Status: 200 OK\r\n\r\nfirst", last=True)
    conn.send_stdout(req, b" second")
    assert conn.fail(req, "500 Internal Server Error", 1)
    stdout, _, types = sent(conn, peer)
    assert stdout == b"Status: 200 OK\r\n\r\nfirst second"
    assert types.count(p.END_REQUEST) == 1


def test_a_retiring_connection_shuts_down_after_the_answer_and_starts_nothing_more(pair):
    conn, req, peer = pair
    conn.settings.retiring = True
    assert conn.end_request(req, head=b"Status: 204 No Content\r\n\r\n")
    assert conn.closing
    # the peer gets the whole answer, then EOF at once: it will not reuse the connection
    peer.settimeout(5)
    data = b""
    while True:
        chunk = peer.recv(65536)
        if not chunk:
            break
        data += chunk
    assert [r.type for r in p.RecordReader().feed(data)] == [p.STDOUT, p.STDOUT, p.END_REQUEST]
    # a request the peer sent anyway is not started
    events = conn.feed(
        p.encode_begin_request(1, flags=p.KEEP_CONN) + p.encode_record(p.PARAMS, 1) + p.encode_record(p.STDIN, 1)
    )
    assert events == [] and conn.request is None


def test_a_kept_connection_takes_the_next_request(pair):
    conn, req, _peer = pair
    assert conn.end_request(req, head=b"Status: 204 No Content\r\n\r\n")
    assert not conn.closing
    events = conn.feed(
        p.encode_begin_request(1, flags=p.KEEP_CONN) + p.encode_record(p.PARAMS, 1) + p.encode_record(p.STDIN, 1)
    )
    assert [kind for kind, _ in events] == ["run"]
