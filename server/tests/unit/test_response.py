import pytest

from wsgate.response import ClientDisconnected, Response, run_app


def collect():
    sent = []
    return sent, Response(sent.append)


def test_single_item_list_gets_content_length():
    sent, response = collect()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    assert run_app(app, {}, response) == "ok"
    assert sent == [b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"]


def test_headers_wait_for_first_non_empty_chunk_and_stream():
    sent, response = collect()

    def app(environ, start_response):
        start_response("200 OK", [])
        yield b""
        assert sent == []
        yield b"a"
        yield b"b"

    assert run_app(app, {}, response) == "ok"
    assert sent == [b"Status: 200 OK\r\n\r\na", b"b"]


def test_empty_body_sends_headers_with_zero_length():
    sent, response = collect()

    def app(environ, start_response):
        start_response("204 No Content", [])
        return []

    run_app(app, {}, response)
    assert sent == [b"Status: 204 No Content\r\nContent-Length: 0\r\n\r\n"]


def test_latin1_header_values():
    sent, response = collect()

    def app(environ, start_response):
        start_response("200 OK", [("X-Name", "caf\xe9")])
        return [b"x"]

    run_app(app, {}, response)
    assert b"X-Name: caf\xe9\r\n" in sent[0]


@pytest.mark.parametrize(
    "status,headers",
    [
        ("200", []),
        ("OK 200", []),
        ("200 OK\r\nX: y", []),
        ("200 OK", [("Bad Name", "v")]),
        ("200 OK", [("X", "a\r\nInjected: 1")]),
        ("200 OK", [("X", 1)]),
    ],
)
def test_invalid_status_or_headers_give_500(status, headers, capfd):
    sent, response = collect()

    def app(environ, start_response):
        start_response(status, headers)
        return [b"never"]

    assert run_app(app, {}, response) == "error"
    assert sent[0].startswith(b"Status: 500 Internal Server Error\r\n")
    assert b"never" not in b"".join(sent)


def test_exc_info_replaces_headers_before_sending():
    sent, response = collect()

    def app(environ, start_response):
        start_response("200 OK", [])
        try:
            raise ValueError("x")
        except ValueError:
            import sys

            start_response("503 Busy", [("Retry-After", "1")], sys.exc_info())
        return [b"busy"]

    assert run_app(app, {}, response) == "ok"
    assert sent[0].startswith(b"Status: 503 Busy\r\nRetry-After: 1\r\n")


def test_second_start_response_without_exc_info_is_an_error():
    _sent, response = collect()

    def app(environ, start_response):
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b""]

    assert run_app(app, {}, response) == "error"


def test_error_after_headers_keeps_single_header_block_and_closes():
    sent, response = collect()
    closed = []

    class Body:
        def __iter__(self):
            yield b"part"
            raise RuntimeError("late")

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body()

    assert run_app(app, {}, response) == "error"
    assert b"".join(sent) == b"Status: 200 OK\r\n\r\npart"
    assert closed == [True]


def test_str_body_is_rejected():
    sent, response = collect()

    def app(environ, start_response):
        start_response("200 OK", [])
        return ["text"]

    assert run_app(app, {}, response) == "error"
    assert sent[0].startswith(b"Status: 500")


def test_disconnect_stops_iteration_and_closes():
    closed, produced = [], []

    def send(data):
        raise ClientDisconnected("gone")

    class Body:
        def __iter__(self):
            for i in range(100):
                produced.append(i)
                yield b"x"

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body()

    assert run_app(app, {}, Response(send)) == "aborted"
    assert closed == [True] and len(produced) == 1


def test_should_stop_is_checked_between_chunks():
    sent, response = collect()
    stop = []

    def app(environ, start_response):
        start_response("200 OK", [])
        for i in range(10):
            if i == 3:
                stop.append(True)
            yield b"%d" % i

    assert run_app(app, {}, response, should_stop=lambda: bool(stop)) == "aborted"
    assert b"".join(sent).endswith(b"012")


def test_hop_by_hop_headers_are_dropped():
    sent, response = collect()

    def app(environ, start_response):
        start_response("200 OK", [("Connection", "close"), ("X-Kept", "1")])
        return [b"x"]

    assert run_app(app, {}, response) == "ok"
    assert b"Connection" not in sent[0] and b"X-Kept: 1\r\n" in sent[0]


def test_the_bytes_that_complete_the_declared_length_go_to_send_last():
    sent, last = [], []
    response = Response(sent.append, last.append)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "4")])
        yield b"ab"
        yield b"cd"

    assert run_app(app, {}, response) == "ok"
    assert sent == [b"Status: 200 OK\r\nContent-Length: 4\r\n\r\nab"]
    assert last == [b"cd"]


def test_a_stream_without_length_is_never_held_back():
    sent, last = [], []
    response = Response(sent.append, last.append)

    def app(environ, start_response):
        start_response("200 OK", [])
        yield b"ab"

    assert run_app(app, {}, response) == "ok"
    assert sent == [b"Status: 200 OK\r\n\r\nab"] and last == []
