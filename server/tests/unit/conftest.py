import os
import sys

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "src"))
if SRC not in sys.path:
    sys.path.insert(0, SRC)


import pytest  # noqa: E402
from support import Daemon  # noqa: E402


@pytest.fixture
def daemon(tmp_path):
    started = []

    def start(*args, name="d"):
        d = Daemon(tmp_path, args, name)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()
        # shown by pytest only when the test failed
        print("---- log of the daemon at %s ----\n%s" % (d.path, d.log))
