"""One FastCGI connection: records in, complete requests out, responses back.

A Connection is fed bytes by whoever owns the socket at the time (a worker's
thread, or the single-threaded mod_fcgid loop). Requests are handed out only once
their PARAMS and STDIN streams have ended, with the body spooled, so the
application never waits on the web server while holding a thread.
Writes come from the request's own thread and are serialised by a lock.
"""

import io
import socket
import tempfile
import threading

from . import log
from . import protocol as p
from .environ import LimitedInput, add_wsgi_keys, fix_paths
from .response import ClientDisconnected, Response, error_head, run_app

MAX_PARAMS = 1024 * 1024
SPOOL_IN_MEMORY = 1024 * 1024
RELAY_MARK = "WSGATE_CGI_RELAY"


class Settings:
    """What every connection of a process needs to know."""

    def __init__(
        self,
        max_body,
        mount_prefix=None,
        max_conns=1,
        max_reqs=1,
        proxy_paths=True,
        multithread=False,
        multiprocess=True,
        allowed_peers=None,
        front_end="fastcgi",
    ):
        # Set once a single-connection process (wsgate fcgid) is stopping: a
        # kept connection is closed right after the answer of its current
        # request instead of being kept.
        self.retiring = False
        self.max_body = max_body
        self.mount_prefix = mount_prefix
        self.proxy_paths = proxy_paths
        self.multithread = multithread
        self.multiprocess = multiprocess
        self.allowed_peers = allowed_peers
        self.front_end = front_end
        self.values = {
            b"FCGI_MAX_CONNS": str(max_conns).encode(),
            b"FCGI_MAX_REQS": str(max_reqs).encode(),
            b"FCGI_MPXS_CONNS": b"0",
        }


class Request:
    __slots__ = (
        "aborted",
        "body",
        "body_size",
        "conn",
        "counts",
        "deadline",
        "declared_length",
        "finished",
        "held",
        "id",
        "keep_conn",
        "log",
        "params",
        "refusal",
        "stage",
        "stderr_sent",
        "stdout_sent",
        "variables",
    )

    def __init__(self, conn, request_id, keep_conn):
        self.conn = conn
        self.id = request_id
        self.keep_conn = keep_conn
        self.params = p.StreamBuffer(MAX_PARAMS)
        self.variables = None
        self.declared_length = None
        self.body = None
        self.body_size = 0
        self.refusal = None
        self.stage = "params"
        self.aborted = False
        self.finished = False
        self.stdout_sent = False
        self.stderr_sent = False
        self.held = b""
        self.log = log
        self.deadline = None
        self.counts = True

    def refuse(self, status):
        if self.refusal is None:
            self.refusal = status
        if self.body is not None:
            self.body.close()
            self.body = None

    def describe(self):
        variables = self.variables or {}
        return "%s %s" % (variables.get("REQUEST_METHOD", "?"), variables.get("REQUEST_URI", ""))


class Connection:
    def __init__(self, sock, settings):
        self.sock = sock
        self.settings = settings
        self.reader = p.RecordReader()
        self.request = None
        self.lock = threading.Lock()
        self.closed = False
        # No request is started here any more: the last answer is on its way.
        self.closing = False
        # False once no further request may be started on it (its request
        # timed out): the answer then closes it.
        self.reusable = True
        # Kept by the worker: when it was last accepted, adopted or answered,
        # whether it waits in the worker's epoll for its next request (parked:
        # no thread has it), whether it was ever put there, and whether it may
        # be handed to another worker when this one stops.
        self.last_active = 0.0
        self.parked = False
        self.registered = False
        self.movable = True

    def fileno(self):
        return self.sock.fileno()

    @property
    def idle(self):
        """No request in progress and no partial record buffered."""
        return self.request is None and self.reader.pending == 0

    # -- input ------------------------------------------------------------

    def receive(self, flags=0):
        """Read what is available; a list of ("run"|"done", Request), None at EOF.

        flags go to recv() (socket.MSG_DONTWAIT where reads must not block).
        Raises ProtocolError for bytes that are not FastCGI.
        """
        try:
            data = self.sock.recv(65536, flags)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return None
        return self.feed(data)

    def feed(self, data):
        events = []
        for record in self.reader.feed(data):
            self._record(record, events)
        return events

    def has_input(self):
        """Whether bytes (or EOF) wait to be read, without blocking."""
        try:
            self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            pass
        return True

    def _record(self, rec, events):
        if self.closing:
            return
        rtype = rec.type
        if rtype not in p.KNOWN_TYPES or rtype in p.MANAGEMENT_TYPES or rec.request_id == 0:
            self._management(rec)
            return
        req = self.request
        if rtype == p.BEGIN_REQUEST:
            self._begin(rec, events)
        elif req is None or rec.request_id != req.id:
            return  # records of inactive requests are ignored (spec 3.3)
        elif rtype == p.ABORT_REQUEST:
            req.aborted = True
            if req.stage in ("params", "stdin"):
                self.end_request(req)
                self.request = None
                events.append(("done", req))
        elif rtype == p.PARAMS and req.stage == "params":
            self._params(req, rec.content)
        elif rtype == p.STDIN and req.stage in ("params", "stdin"):
            if req.stage == "params":
                raise p.ProtocolError("STDIN before the end of PARAMS")
            self._stdin(req, rec.content, events)

    def _management(self, rec):
        if rec.type == p.GET_VALUES and rec.request_id == 0:
            try:
                names = [name for name, _ in p.iter_pairs(rec.content)]
            except p.ProtocolError:
                names = []
            values = self.settings.values
            reply = p.encode_pairs((n, values[n]) for n in names if n in values)
            self.send(p.encode_record(p.GET_VALUES_RESULT, 0, reply))
        else:
            self.send(p.encode_unknown_type(rec.type))

    def _begin(self, rec, events):
        if len(rec.content) < p.BEGIN_BODY.size:
            raise p.ProtocolError("short BEGIN_REQUEST body")
        role, flags = p.BEGIN_BODY.unpack_from(rec.content)
        if self.request is not None:
            self.send(p.encode_end_request(rec.request_id, 0, p.CANT_MPX_CONN))
            return
        req = Request(self, rec.request_id, bool(flags & p.KEEP_CONN))
        self.request = req
        if role != p.RESPONDER:
            req.counts = False
            with self.lock:
                self._finish_locked(req, p.encode_end_request(rec.request_id, 0, p.UNKNOWN_ROLE))
            events.append(("done", req))

    def _params(self, req, content):
        if req.refusal:
            if not content:
                req.stage = "stdin"
            return
        try:
            ended = req.params.add(content)
        except p.ProtocolError:
            log.warn("request parameters larger than %d bytes", MAX_PARAMS)
            req.refuse("431 Request Header Fields Too Large")
            req.params = None
            return
        if not ended:
            return
        req.stage = "stdin"
        try:
            req.variables = p.decode_params(req.params.value())
        except p.ProtocolError as exc:
            log.warn("bad request parameters: %s", exc)
            req.refuse("400 Bad Request")
            return
        finally:
            req.params = None
        raw = req.variables.get("CONTENT_LENGTH", "").strip()
        if raw:
            if not (raw.isascii() and raw.isdigit()):
                req.refuse("400 Bad Request")
            elif int(raw) > self.settings.max_body:
                req.refuse("413 Content Too Large")
            else:
                req.declared_length = int(raw)

    def _stdin(self, req, content, events):
        if not content:
            self._complete(req, events)
            return
        if req.refusal:
            return
        if req.declared_length is not None:
            content = content[: req.declared_length - req.body_size]
        elif req.body_size + len(content) > self.settings.max_body:
            req.refuse("413 Content Too Large")
            return
        if content:
            if req.body is None:
                req.body = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
            req.body.write(content)
            req.body_size += len(content)

    def _complete(self, req, events):
        req.stage = "ready"
        if req.refusal is None and req.declared_length is not None and req.body_size < req.declared_length:
            log.warn(
                "%s: the request body ended after %d of %d bytes (CONTENT_LENGTH)",
                req.describe(),
                req.body_size,
                req.declared_length,
            )
            req.refuse("400 Bad Request")
        if req.refusal:
            log.notice("%s: refused: %s", req.describe(), req.refusal)
            self.end_request(req, int(req.refusal[:3]), head=error_head(req.refusal))
            self.request = None
            events.append(("done", req))
            return
        if req.declared_length is None:
            req.variables["CONTENT_LENGTH"] = str(req.body_size)
        if req.body is not None:
            req.body.seek(0)
        events.append(("run", req))

    # -- output -----------------------------------------------------------

    def _send_locked(self, data):
        if self.closed:
            raise ClientDisconnected("connection closed")
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.closed = True
            raise ClientDisconnected(str(exc)) from None

    def send(self, data):
        with self.lock:
            self._send_locked(data)

    def send_stdout(self, req, data, last=False):
        """Send a part of req's response; with last, hold it back to go out with END_REQUEST."""
        with self.lock:
            if req.finished:
                raise ClientDisconnected("request already ended (timed out)")
            if req.aborted:
                raise ClientDisconnected("request aborted by the web server")
            req.stdout_sent = True
            data = req.held + p.encode_stream(p.STDOUT, req.id, data)
            if last:
                req.held = data
            else:
                req.held = b""
                self._send_locked(data)

    def send_stderr(self, req, data):
        """A log event of req for the web server's error log; dropped once req has ended.

        One record per line: Apache logs each FCGI_STDERR record as one entry.
        """
        with self.lock:
            if req.finished or self.closed:
                return
            req.stderr_sent = True
            try:
                self._send_locked(
                    b"".join(p.encode_stream(p.STDERR, req.id, line) for line in data.splitlines(keepends=True))
                )
            except ClientDisconnected:
                pass

    def _finish_locked(self, req, data):
        """Send data, the last bytes of req, and decide whether the connection is kept.

        Decided before sending, since the peer may start the next request as
        soon as it has the answer: either that request will be read and
        answered, or this connection starts nothing more and is shut down
        right after the answer, before the peer can reuse it.
        """
        req.finished = True
        if self.request is req:
            self.request = None
        kept = req.keep_conn and self.reusable and not self.settings.retiring
        if not kept:
            self.closing = True
        try:
            self._send_locked(data)
        except ClientDisconnected:
            return False
        if req.keep_conn and not kept:
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        return True

    def _end_locked(self, req, app_status, protocol_status, head):
        if req.finished:
            return False
        data = req.held + p.encode_stream(p.STDOUT, req.id, head) + p.encode_record(p.STDOUT, req.id)
        req.held = b""
        if req.stderr_sent:
            data += p.encode_record(p.STDERR, req.id)
        return self._finish_locked(req, data + p.encode_end_request(req.id, app_status, protocol_status))

    def end_request(self, req, app_status=0, protocol_status=p.REQUEST_COMPLETE, head=b""):
        """Close STDOUT (and STDERR) and send END_REQUEST, once; False when already ended."""
        with self.lock:
            return self._end_locked(req, app_status, protocol_status, head)

    def fail(self, req, status, app_status):
        """End req, answering status if none of its output was sent yet.

        Deciding and sending under one lock hold: a response the request's
        thread is sending at this moment either went out whole before, or
        not at all, so the web server always gets exactly one header block.
        """
        with self.lock:
            head = b"" if req.stdout_sent else error_head(status)
            return self._end_locked(req, app_status, p.REQUEST_COMPLETE, head)

    def expire(self, req):
        """The request ran out of time: answer 504 if nothing was sent yet, and end it."""
        return self.fail(req, "504 Gateway Timeout", 504)

    def overloaded(self, req):
        log.warn("%s: overloaded, answering 503", req.describe())
        self.end_request(req, 503, p.OVERLOADED, head=error_head("503 Service Unavailable", ["Retry-After: 1"]))

    def close(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


def run_request(req, app, poll=None):
    """Run the application for a complete request (in the calling thread).

    poll, if given, is called between chunks of the response to read what
    the web server sent meanwhile (ABORT_REQUEST or EOF).
    """
    conn = req.conn
    settings = conn.settings
    environ = req.variables
    fix_paths(
        environ,
        settings.mount_prefix,
        whole_path_in_script_name=settings.proxy_paths and RELAY_MARK not in req.variables,
    )
    body = req.body if req.body is not None else io.BytesIO()
    req.log = log.RequestLog(lambda data: conn.send_stderr(req, data))
    add_wsgi_keys(
        environ,
        LimitedInput(body, req.body_size),
        log.ErrorStream(req.log),
        multithread=settings.multithread,
        multiprocess=settings.multiprocess,
        run_once=False,
        front_end=settings.front_end,
    )
    response = Response(lambda data: conn.send_stdout(req, data), lambda data: conn.send_stdout(req, data, last=True))

    def should_stop():
        if poll is not None:
            poll()
        return req.aborted or conn.closed

    outcome = run_app(app, environ, response, should_stop=should_stop, logger=req.log)
    conn.end_request(req, 0 if outcome == "ok" else 1)
    body.close()
    req.body = None
    return outcome
