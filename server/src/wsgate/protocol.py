"""FastCGI 1.0 records and name-value pairs, without any I/O."""

# The C module under the struct module: one module fewer for `wsgate relay` to import.
from _struct import Struct

VERSION = 1
HEADER = Struct("!BBHHBx")
HEADER_LEN = HEADER.size
MAX_CONTENT = 0xFFFF

BEGIN_REQUEST = 1
ABORT_REQUEST = 2
END_REQUEST = 3
PARAMS = 4
STDIN = 5
STDOUT = 6
STDERR = 7
DATA = 8
GET_VALUES = 9
GET_VALUES_RESULT = 10
UNKNOWN_TYPE = 11
KNOWN_TYPES = frozenset(range(1, 12))
MANAGEMENT_TYPES = frozenset((GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE))

RESPONDER = 1
AUTHORIZER = 2
FILTER = 3
KEEP_CONN = 1

REQUEST_COMPLETE = 0
CANT_MPX_CONN = 1
OVERLOADED = 2
UNKNOWN_ROLE = 3

BEGIN_BODY = Struct("!HB5x")
END_BODY = Struct("!IB3x")
UNKNOWN_BODY = Struct("!B7x")
_LONG = Struct("!I")
_PADDING = bytes(7)


class ProtocolError(Exception):
    """The peer sent bytes that are not valid FastCGI."""


def encode_record(rtype, request_id, content=b""):
    """One record; content must fit (at most 65535 bytes). Padded to 8 bytes."""
    length = len(content)
    if length > MAX_CONTENT:
        raise ValueError("record content longer than 65535 bytes")
    padding = -length & 7
    return b"".join((HEADER.pack(VERSION, rtype, request_id, length, padding), content, _PADDING[:padding]))


def encode_stream(rtype, request_id, data):
    """Records carrying data, split at 65535 bytes. Empty data gives no record."""
    if len(data) <= MAX_CONTENT:
        return encode_record(rtype, request_id, data) if data else b""
    view = memoryview(data)
    return b"".join(
        encode_record(rtype, request_id, view[pos : pos + MAX_CONTENT]) for pos in range(0, len(view), MAX_CONTENT)
    )


def encode_begin_request(request_id, role=RESPONDER, flags=0):
    return encode_record(BEGIN_REQUEST, request_id, BEGIN_BODY.pack(role, flags))


def encode_end_request(request_id, app_status=0, protocol_status=REQUEST_COMPLETE):
    body = END_BODY.pack(app_status & 0xFFFFFFFF, protocol_status)
    return encode_record(END_REQUEST, request_id, body)


def encode_unknown_type(rtype):
    return encode_record(UNKNOWN_TYPE, 0, UNKNOWN_BODY.pack(rtype))


def _encode_length(n):
    if n < 0x80:
        return bytes((n,))
    if n > 0x7FFFFFFF:
        raise ValueError("name or value longer than 2**31-1 bytes")
    return _LONG.pack(n | 0x80000000)


def encode_pair(name, value):
    return b"".join((_encode_length(len(name)), _encode_length(len(value)), name, value))


def encode_pairs(pairs):
    """Name-value pairs (bytes, bytes) as one byte string, ready for encode_stream."""
    items = pairs.items() if hasattr(pairs, "items") else pairs
    return b"".join(encode_pair(n, v) for n, v in items)


def _decode_length(data, pos):
    if pos >= len(data):
        raise ProtocolError("name-value pair truncated")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    if pos + 4 > len(data):
        raise ProtocolError("name-value pair truncated")
    return _LONG.unpack_from(data, pos)[0] & 0x7FFFFFFF, pos + 4


def _pairs(data, values):
    """[(name, value)] sliced from values (data itself, or data decoded as latin-1).

    Declared lengths are checked against the data present before any slice,
    so a forged length never makes us allocate more than the input size. The
    one-byte lengths of nearly every pair are read inline: this runs for
    every request.
    """
    pairs = []
    pos = 0
    end = len(data)
    while pos < end:
        name_len = data[pos]
        if name_len < 0x80:
            pos += 1
        else:
            name_len, pos = _decode_length(data, pos)
        if pos >= end:
            raise ProtocolError("name-value pair truncated")
        value_len = data[pos]
        if value_len < 0x80:
            pos += 1
        else:
            value_len, pos = _decode_length(data, pos)
        start = pos
        pos += name_len
        if pos + value_len > end:
            raise ProtocolError("name-value pair truncated")
        pairs.append((values[start:pos], values[pos : pos + value_len]))
        pos += value_len
    return pairs


def iter_pairs(data):
    """Yield (name, value) bytes pairs, one at a time; ProtocolError on a truncated pair."""
    data = bytes(data)
    pos = 0
    end = len(data)
    while pos < end:
        name_len, pos = _decode_length(data, pos)
        value_len, pos = _decode_length(data, pos)
        if name_len + value_len > end - pos:
            raise ProtocolError("name-value pair truncated")
        name = data[pos : pos + name_len]
        pos += name_len
        yield name, data[pos : pos + value_len]
        pos += value_len


def decode_pairs(data):
    """Name-value pairs as a dict; a repeated name keeps its last value."""
    data = bytes(data)
    return dict(_pairs(data, data))


def decode_params(data):
    """FastCGI parameters as a dict of str, each carrying its bytes as latin-1 (PEP 3333).

    A repeated name keeps its last value.
    """
    data = bytes(data)
    return dict(_pairs(data, data.decode("latin-1")))


class Record:
    __slots__ = ("content", "request_id", "type")

    def __init__(self, rtype, request_id, content):
        self.type = rtype
        self.request_id = request_id
        self.content = content

    def __repr__(self):
        return "Record(type=%d, request_id=%d, %d bytes)" % (self.type, self.request_id, len(self.content))


class RecordReader:
    """Incremental record parser: feed() bytes as they arrive, get whole records.

    The buffer never holds more than one incomplete record (at most
    8 + 65535 + 255 bytes) beyond what was fed in the same call.
    """

    def __init__(self):
        self._buffer = bytearray()

    @property
    def pending(self):
        """Bytes of an incomplete record held back."""
        return len(self._buffer)

    def feed(self, data):
        buf = self._buffer
        buf += data
        records = []
        pos = 0
        available = len(buf)
        while available - pos >= HEADER_LEN:
            version, rtype, request_id, length, padding = HEADER.unpack_from(buf, pos)
            if version != VERSION:
                raise ProtocolError("unsupported FastCGI version %d" % version)
            total = HEADER_LEN + length + padding
            if available - pos < total:
                break
            start = pos + HEADER_LEN
            records.append(Record(rtype, request_id, bytes(buf[start : start + length])))
            pos += total
        del buf[:pos]
        return records


class StreamBuffer:
    """Collects one FastCGI input stream (e.g. PARAMS) up to its empty record."""

    __slots__ = ("_parts", "closed", "limit", "size")

    def __init__(self, limit):
        self.limit = limit
        self._parts = []
        self.size = 0
        self.closed = False

    def add(self, content):
        """Append a record's content; returns True once the stream has ended.

        Raises ProtocolError when the stream grows past the limit or
        continues after its end.
        """
        if self.closed:
            raise ProtocolError("data after end of stream")
        if not content:
            self.closed = True
            return True
        self.size += len(content)
        if self.size > self.limit:
            raise ProtocolError("stream larger than %d bytes" % self.limit)
        self._parts.append(content)
        return False

    def value(self):
        return b"".join(self._parts)
