"""A small FastCGI client for the tests, written against the spec."""

import socket
import struct
import time

from wsgate import protocol as p


class Reply:
    def __init__(self):
        self.stdout = b""
        self.stderr = b""
        self.end = None  # (app_status, protocol_status)
        self.records = []

    @property
    def head(self):
        return self.stdout.partition(b"\r\n\r\n")[0].decode("latin-1")

    @property
    def body(self):
        return self.stdout.partition(b"\r\n\r\n")[2]

    @property
    def status(self):
        first = self.head.split("\r\n")[0]
        assert first.startswith("Status: "), (self.stdout[:200], self.records, self.end)
        return int(first[8:11])

    def header(self, name):
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.lower() == name.lower():
                return value.strip()
        return None


class Client:
    def __init__(self, address, timeout=10.0):
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self.reader = p.RecordReader()
        self.backlog = []

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def begin(self, request_id=1, keep_conn=False, role=p.RESPONDER):
        self.send(p.encode_begin_request(request_id, role, p.KEEP_CONN if keep_conn else 0))

    def params(self, environ, request_id=1, split=None):
        data = p.encode_pairs({k.encode("latin-1"): v.encode("latin-1") for k, v in environ.items()})
        if split:
            for i in range(0, len(data), split):
                self.send(p.encode_record(p.PARAMS, request_id, data[i : i + split]))
        else:
            self.send(p.encode_stream(p.PARAMS, request_id, data))
        self.send(p.encode_record(p.PARAMS, request_id))

    def stdin(self, body, request_id=1, end=True):
        self.send(p.encode_stream(p.STDIN, request_id, body))
        if end:
            self.send(p.encode_record(p.STDIN, request_id))

    def records(self):
        """Yield records until EOF."""
        while True:
            while self.backlog:
                yield self.backlog.pop(0)
            data = self.sock.recv(65536)
            if not data:
                return
            self.backlog.extend(self.reader.feed(data))

    def next_record(self):
        for rec in self.records():
            return rec
        return None

    def reply(self, request_id=1):
        reply = Reply()
        for rec in self.records():
            reply.records.append(rec)
            if rec.request_id != request_id:
                continue
            if rec.type == p.STDOUT:
                reply.stdout += rec.content
            elif rec.type == p.STDERR:
                reply.stderr += rec.content
            elif rec.type == p.END_REQUEST:
                reply.end = p.END_BODY.unpack(rec.content)
                return reply
        return reply

    def at_eof(self, timeout=2.0):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def request(self, path="/", method="GET", body=b"", keep_conn=False, extra=None, content_length=True, request_id=1):
        env = cgi_params(path, method)
        if body and content_length:
            env["CONTENT_LENGTH"] = str(len(body))
        env.update(extra or {})
        self.begin(request_id, keep_conn)
        self.params(env, request_id)
        self.stdin(body, request_id)
        return self.reply(request_id)


def cgi_params(path="/", method="GET"):
    script, query = path.partition("?")[0], path.partition("?")[2]
    return {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "Apache/2.4",
        "REQUEST_METHOD": method,
        "REQUEST_URI": path,
        "SCRIPT_NAME": script,
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
    }


def request(address, *args, **kwargs):
    client = Client(address)
    try:
        return client.request(*args, **kwargs)
    finally:
        client.close()


def wait_for_socket(path, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited with %s" % proc.returncode)
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            s.close()
            return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(path)


def unpack_end(rec):
    return struct.unpack("!IB3x", rec.content)
