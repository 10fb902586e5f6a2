import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgate import protocol as p


def test_record_header_and_padding():
    rec = p.encode_record(p.STDOUT, 1, b"abc")
    assert rec[:8] == struct.pack("!BBHHBx", 1, p.STDOUT, 1, 3, 5)
    assert rec[8:11] == b"abc"
    assert len(rec) == 16


def test_aligned_content_has_no_padding():
    rec = p.encode_record(p.STDOUT, 1, b"x" * 16)
    assert rec[6] == 0
    assert len(rec) == 24


def test_record_content_limit():
    with pytest.raises(ValueError):
        p.encode_record(p.STDOUT, 1, b"x" * 65536)


def test_stream_split_at_65535():
    data = bytes(range(256)) * 600  # 153600 bytes
    encoded = p.encode_stream(p.STDOUT, 7, data)
    records = p.RecordReader().feed(encoded)
    assert [len(r.content) for r in records] == [65535, 65535, 153600 - 131070]
    assert b"".join(r.content for r in records) == data
    assert all(r.request_id == 7 and r.type == p.STDOUT for r in records)
    assert len(encoded) % 8 == 0


def test_empty_stream_is_no_record():
    assert p.encode_stream(p.STDOUT, 1, b"") == b""


def test_reader_byte_by_byte():
    wire = p.encode_begin_request(1, p.RESPONDER, p.KEEP_CONN) + p.encode_record(p.PARAMS, 1, b"")
    reader = p.RecordReader()
    got = []
    for i in range(len(wire)):
        got += reader.feed(wire[i : i + 1])
    assert [(r.type, r.request_id) for r in got] == [(p.BEGIN_REQUEST, 1), (p.PARAMS, 1)]
    assert p.BEGIN_BODY.unpack(got[0].content) == (p.RESPONDER, p.KEEP_CONN)
    assert reader.pending == 0


def test_reader_rejects_bad_version():
    with pytest.raises(p.ProtocolError):
        p.RecordReader().feed(b"\x02" + bytes(7))


def test_end_request_body():
    rec = p.RecordReader().feed(p.encode_end_request(3, 500, p.OVERLOADED))[0]
    assert rec.type == p.END_REQUEST and rec.request_id == 3
    assert p.END_BODY.unpack(rec.content) == (500, p.OVERLOADED)


def test_unknown_type_body():
    rec = p.RecordReader().feed(p.encode_unknown_type(42))[0]
    assert (rec.type, rec.request_id, rec.content[0]) == (p.UNKNOWN_TYPE, 0, 42)


@pytest.mark.parametrize(
    "nlen,vlen,header",
    [
        (1, 127, 2),
        (127, 128, 5),
        (128, 0, 5),
        (200, 70000, 8),
    ],
)
def test_pair_length_encoding(nlen, vlen, header):
    name, value = b"n" * nlen, b"v" * vlen
    enc = p.encode_pair(name, value)
    assert len(enc) == header + nlen + vlen
    if nlen >= 128:
        assert enc[0] & 0x80
        assert struct.unpack("!I", enc[:4])[0] & 0x7FFFFFFF == nlen
    else:
        assert enc[0] == nlen
    assert p.decode_pairs(enc) == {name: value}


def test_pairs_straddling_records():
    pairs = {b"HTTP_X_BIG": b"y" * 300, b"SCRIPT_NAME": b"/app", b"": b""}
    data = p.encode_pairs(pairs)
    wire = b"".join(p.encode_record(p.PARAMS, 1, data[i : i + 7]) for i in range(0, len(data), 7))
    wire += p.encode_record(p.PARAMS, 1, b"")
    stream = p.StreamBuffer(1 << 20)
    done = False
    for rec in p.RecordReader().feed(wire):
        done = stream.add(rec.content)
    assert done
    assert p.decode_pairs(stream.value()) == pairs


def test_truncated_pairs():
    enc = p.encode_pair(b"NAME", b"value")
    for cut in range(1, len(enc)):
        with pytest.raises(p.ProtocolError):
            p.decode_pairs(enc[:cut])


def test_forged_huge_length_is_rejected_without_allocation():
    forged = struct.pack("!II", 0x7FFFFFFF | 0x80000000, 0x7FFFFFFF | 0x80000000) + b"ab"
    with pytest.raises(p.ProtocolError):
        p.decode_pairs(forged)


def test_stream_buffer_limit_and_end():
    stream = p.StreamBuffer(10)
    assert not stream.add(b"12345")
    with pytest.raises(p.ProtocolError):
        stream.add(b"123456")
    closed = p.StreamBuffer(10)
    assert closed.add(b"")
    with pytest.raises(p.ProtocolError):
        closed.add(b"x")


# -- property-based --------------------------------------------------------

records = st.tuples(st.integers(1, 11), st.integers(0, 0xFFFF), st.binary(max_size=300))


@settings(max_examples=200, deadline=1000)
@given(st.lists(records, max_size=8), st.lists(st.integers(1, 50), min_size=1, max_size=20))
def test_roundtrip_any_chunking(recs, cuts):
    wire = b"".join(p.encode_record(t, i, c) for t, i, c in recs)
    reader = p.RecordReader()
    got, pos, k = [], 0, 0
    while pos < len(wire):
        step = cuts[k % len(cuts)]
        got += reader.feed(wire[pos : pos + step])
        pos += step
        k += 1
    assert [(r.type, r.request_id, r.content) for r in got] == recs
    assert reader.pending == 0


@settings(max_examples=300, deadline=1000)
@given(st.binary(max_size=2000))
def test_reader_any_bytes(data):
    reader = p.RecordReader()
    try:
        out = reader.feed(data)
    except p.ProtocolError:
        return
    consumed = sum(8 + len(r.content) for r in out)
    assert consumed <= len(data)
    assert reader.pending <= 8 + 0xFFFF + 0xFF
    assert reader.pending <= len(data)


@settings(max_examples=300, deadline=1000)
@given(st.binary(max_size=2000))
def test_pairs_any_bytes(data):
    try:
        pairs = list(p.iter_pairs(data))
    except p.ProtocolError:
        return
    assert sum(len(n) + len(v) for n, v in pairs) <= len(data)
    assert list(p.iter_pairs(p.encode_pairs(pairs))) == pairs


@settings(max_examples=200, deadline=1000)
@given(st.dictionaries(st.binary(max_size=200), st.binary(max_size=300), max_size=10))
def test_pairs_roundtrip(pairs):
    assert p.decode_pairs(p.encode_pairs(pairs)) == pairs


@settings(max_examples=200, deadline=1000)
@given(st.dictionaries(st.binary(max_size=200), st.binary(max_size=300), max_size=10))
def test_params_are_the_pairs_as_latin1_text(pairs):
    expected = {n.decode("latin-1"): v.decode("latin-1") for n, v in pairs.items()}
    assert p.decode_params(p.encode_pairs(pairs)) == expected


@settings(max_examples=300, deadline=1000)
@given(st.binary(max_size=2000))
def test_params_fail_like_pairs(data):
    try:
        pairs = p.decode_pairs(data)
    except p.ProtocolError:
        with pytest.raises(p.ProtocolError):
            p.decode_params(data)
    else:
        assert p.decode_params(data) == {n.decode("latin-1"): v.decode("latin-1") for n, v in pairs.items()}


@settings(max_examples=200, deadline=1000)
@given(st.integers(0, 0x7FFFFFFF), st.integers(0, 0x7FFFFFFF), st.binary(max_size=64))
def test_pairs_forged_lengths(nlen, vlen, tail):
    data = p._encode_length(nlen) + p._encode_length(vlen) + tail
    pairs = p.iter_pairs(data)
    if nlen + vlen > len(tail):
        with pytest.raises(p.ProtocolError):
            next(pairs)
    else:
        assert next(pairs) == (tail[:nlen], tail[nlen : nlen + vlen])
