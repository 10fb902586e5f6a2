"""roles/django/files/served.py, the check that Apache serves the live
release, against a server on 127.0.0.1 that is not up at first."""

import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SERVED = Path(__file__).resolve().parents[1] / "roles" / "django" / "files" / "served.py"


class Site(ThreadingHTTPServer):
    """Answers `not_up` with its status for the first `starting` requests
    (an app starting behind Apache), then 200, or `page` for /."""

    def __init__(self, starting=0, not_up=503, page=200):
        super().__init__(("127.0.0.1", 0), Handler)
        self.starting, self.not_up, self.page = starting, not_up, page
        self.requests = []


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        site = self.server
        site.requests.append((self.path, self.headers["Host"]))
        if len(site.requests) <= site.starting:
            status = site.not_up
        else:
            status = site.page if self.path == "/" else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    sites = []

    def start(**kwargs):
        site = Site(**kwargs)
        threading.Thread(target=site.serve_forever, daemon=True).start()
        sites.append(site)
        return site

    yield start
    for site in sites:
        site.shutdown()
        site.server_close()


def served(port, wait):
    site = ["--address", "127.0.0.1", "--port", str(port), "--host", "site.test"]
    request = ["--path", "/", "--asset", "/static/site.css", "--wait", str(wait)]
    result = subprocess.run(
        [sys.executable, str(SERVED), *site, *request],
        capture_output=True,
        text=True,
        timeout=wait + 30,
        check=False,
    )
    return result.returncode, json.loads(result.stdout)


def test_a_site_that_starts_slowly_is_asked_again_until_it_answers(serve):
    site = serve(starting=3)
    rc, answer = served(site.server_address[1], wait=20)
    assert rc == 0, answer
    assert answer["status"] == 200 and answer["asset_status"] == 200
    assert answer["tries"] == 4 and answer["seconds"] >= 3
    assert site.requests[-1] == ("/static/site.css", "site.test")


@pytest.mark.parametrize("not_up", [502, 504])
def test_every_answer_of_an_app_not_up_yet_is_asked_again(serve, not_up):
    site = serve(starting=1, not_up=not_up)
    rc, answer = served(site.server_address[1], wait=20)
    assert rc == 0 and answer["tries"] == 2, answer


def test_a_site_that_never_comes_up_fails_after_the_wait(serve):
    site = serve(starting=10**6)
    rc, answer = served(site.server_address[1], wait=2)
    assert rc == 1
    assert answer["status"] == 503 and answer["asset_status"] is None
    assert 2 <= answer["seconds"] < 10 and answer["tries"] >= 2


def test_nothing_listening_fails_after_the_wait_and_says_why():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    rc, answer = served(port, wait=2)
    assert rc == 1
    assert answer["status"] is None and answer["error"].startswith("ConnectionRefusedError")
    assert answer["seconds"] >= 2


def test_an_answer_from_the_app_is_not_asked_again(serve):
    site = serve(page=404)
    rc, answer = served(site.server_address[1], wait=20)
    assert rc == 1
    assert answer["status"] == 404 and answer["tries"] == 1
    assert len(site.requests) == 1
