"""Helpers shared by the Molecule verify tests of every scenario."""

import json
import os
import re
import shlex

import pytest

BASE_URL = "http://127.0.0.1"


class Site:
    """Talks HTTP to the site from inside the host, through Apache."""

    def __init__(self, host, tmp):
        self.host = host
        self.jar = f"{tmp}/cookies"

    def curl(self, path, *args):
        command = ["curl", "-sS", "--max-time", "30", "-b", self.jar, "-c", self.jar, *args, BASE_URL + path]
        return self.host.check_output(" ".join(shlex.quote(arg) for arg in command))

    def get(self, path):
        return self.curl(path)

    def headers(self, path, method="GET"):
        raw = self.curl(path, "-o", "/dev/null", "-D", "-", "-X", method)
        status = int(raw.split()[1])
        fields = {}
        for line in raw.splitlines()[1:]:
            name, _, value = line.partition(":")
            if value:
                fields[name.strip().lower()] = value.strip()
        return status, fields

    def status(self, path, *args):
        return int(self.curl(path, "-o", "/dev/null", "-w", "%{http_code}", *args))

    def json(self, path):
        return json.loads(self.get(path))

    def csrf_token(self, path):
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', self.get(path))
        assert match, f"no CSRF token in the form at {path}"
        return match.group(1)


@pytest.fixture(scope="module")
def expected_mode():
    return os.environ["EXPECTED_MODE"]


@pytest.fixture()
def site(host):
    tmp = host.check_output("mktemp -d")
    yield Site(host, tmp)
    host.run(f"rm -rf {shlex.quote(tmp)}")
