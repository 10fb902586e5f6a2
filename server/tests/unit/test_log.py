import re

from wsgate import log


def test_request_log_writes_stderr_and_copies(capfd):
    copies = []
    request_log = log.RequestLog(copies.append)
    request_log.error("one %s\ntwo", "x")
    try:
        raise ValueError("broken")
    except ValueError:
        request_log.exception("failed")
    request_log.log("debug", "below the threshold")
    written = capfd.readouterr().err.encode()
    assert b"".join(copies) == written
    assert len(copies) == 2
    assert re.match(rb"\[[-0-9: .]+\] \[wsgate:error\] \[pid \d+\] one x\n", copies[0])
    assert copies[0].endswith(b"] two\n")
    assert b"Traceback" in copies[1] and b"ValueError: broken" in copies[1]


def test_error_stream_logs_whole_lines_to_its_target():
    copies = []
    stream = log.ErrorStream(log.RequestLog(copies.append))
    assert stream.write("partial ") == 8
    assert copies == []
    stream.writelines(["line\n", "next"])
    assert len(copies) == 1 and copies[0].endswith(b"] partial line\n")
    stream.flush()
    assert len(copies) == 2 and copies[1].endswith(b"] next\n")
    stream.flush()
    assert len(copies) == 2
