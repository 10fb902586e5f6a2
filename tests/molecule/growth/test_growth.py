"""A site grown past one VPS (the `growth` scenario): PostgreSQL on
growth-db, two app hosts in daemon mode and HAProxy on growth-lb. The app
must work through the balancer whichever host answers: a CSRF-protected
POST, an upload, a login. A rolling redeploy under load must fail no
request; an app host that stops must leave the balancer within a bounded
window; and the database must let in the app hosts only. The tests run in
order, on one worker: some stop services or redeploy."""

import http.cookiejar
import json
import re
import secrets
import shlex
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import APP, changed_app, converge, copy_scripts, node

DB, LB = "growth-db", "growth-lb"
APPS = ["growth-app1", "growth-app2"]
SITE = "vps.test"
# growth-lb's port 80, published on the controller's loopback.
BALANCER = "http://127.0.0.1:22580"
LOAD = Path(__file__).with_name("balanced_load.py")
REMOTE = "/root/growth-test"
# How fast HAProxy must take a stopped app host out (the haproxy role's
# defaults: two failed checks a second apart, each given up to 2 s), with
# room for a saturated test machine.
FAILOVER_BOUND = 15.0


class Visitor:
    """A browser's worth of HTTP through the balancer: cookies, CSRF."""

    def __init__(self):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(self.jar), NoRedirect()
        )

    def request(self, path, data=None):
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(
            BALANCER + path, data=body, headers={"Host": SITE, "Referer": f"http://{SITE}/"}
        )
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read().decode()

    def csrf_token(self, path):
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', self.request(path)[2])
        assert match, f"no CSRF token in the form at {path}"
        return match.group(1)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def inside(name, path, *curl_args):
    """A request to one app host's own Apache, from inside that host."""
    args = ["curl", "-sS", "--max-time", "60", "-H", f"Host: {SITE}", *curl_args, f"http://127.0.0.1{path}"]
    return node(name).check_output(" ".join(shlex.quote(arg) for arg in args))


def test_both_app_hosts_answer_through_the_balancer():
    visitor = Visitor()
    seen = set()
    for _ in range(20):
        status, _, body = visitor.request("/served-by/")
        assert status == 200, body
        seen.add(json.loads(body)["hostname"])
    assert seen == set(APPS)


def test_a_note_posted_through_the_balancer_is_on_every_app_host():
    visitor = Visitor()
    text = f"note {uuid.uuid4().hex}"
    token = visitor.csrf_token("/notes/")
    status, _, body = visitor.request("/notes/", {"text": text, "csrfmiddlewaretoken": token})
    assert status == 303, body
    for name in APPS:
        assert text in inside(name, "/notes/"), name


def test_a_post_without_its_csrf_token_is_refused_through_the_balancer():
    status, _, _ = Visitor().request("/notes/", {"text": "no token"})
    assert status == 403


def test_an_upload_to_one_app_host_is_served_by_the_other():
    first, other = node(APPS[0]), node(APPS[1])
    remote = first.check_output("mktemp -d")
    try:
        jar = f"{remote}/cookies"
        form = inside(APPS[0], "/upload/", "-c", jar)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
        first.check_output(f"head -c 262144 /dev/urandom > {remote}/upload.bin")
        done = inside(
            APPS[0],
            "/upload/",
            "-b",
            jar,
            "-F",
            f"csrfmiddlewaretoken={token}",
            "-F",
            f"file=@{remote}/upload.bin",
            "-e",
            f"http://{SITE}/upload/",
        )
        url = re.search(r'id="upload-url" href="([^"]+)"', done)
        assert url, done
        digest = first.check_output(f"sha256sum {remote}/upload.bin").split()[0]
        served = other.check_output(
            f"curl -sS --max-time 60 -H 'Host: {SITE}' http://127.0.0.1{url.group(1)} | sha256sum"
        ).split()[0]
        assert served == digest
    finally:
        first.run(f"rm -rf {remote}")


def test_a_login_holds_whichever_app_host_answers():
    username, password = f"visitor{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(16)
    create = (
        "from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_user({username!r}, password={password!r})"
    )
    node(APPS[0]).check_output(f"/srv/{APP}/bin/manage shell -c {shlex.quote(create)}")
    visitor = Visitor()
    token = visitor.csrf_token("/login/")
    status, headers, body = visitor.request(
        "/login/", {"username": username, "password": password, "csrfmiddlewaretoken": token}
    )
    assert status == 302 and headers["Location"] == "/whoami/", body
    answers = [json.loads(visitor.request("/whoami/")[2]) for _ in range(12)]
    assert {answer["hostname"] for answer in answers} == set(APPS)
    assert {answer["user"] for answer in answers} == {username}


def startup_answer(name, address):
    """The first byte PostgreSQL answers a client on `name` with: R (it asks
    for the password) or E (it refuses, with its message)."""
    startup = struct.pack("!I", 196608) + f"user\0{APP}\0database\0{APP}\0\0".encode()
    message = struct.pack("!I", len(startup) + 4) + startup
    probe = (
        "import socket,sys; s=socket.create_connection((sys.argv[1], 5432), timeout=30); "
        "s.sendall(bytes.fromhex(sys.argv[2])); print(s.recv(4096).decode('latin-1'))"
    )
    return node(name).check_output(f"python3 -c {shlex.quote(probe)} {address} {message.hex()}")


def test_the_database_lets_in_the_app_hosts_only():
    address = node(DB).check_output("hostname -I").split()[0]
    for name in APPS:
        assert startup_answer(name, address).startswith("R"), name
    refused = startup_answer(LB, address)
    assert refused.startswith("E") and "no pg_hba.conf entry" in refused, refused


def task_results(output, task):
    """(status, host) of every host's result of every run of a task."""
    results = []
    for block in output.split("\nTASK [")[1:]:
        if block.startswith(task + "]"):
            results += re.findall(r"^(ok|changed|skipping|failed|fatal): \[([^\]]+)\]", block, re.M)
    return results


class BalancedLoad:
    """balanced_load.py running on the balancer's host."""

    def __init__(self, path, marker="", connections=16):
        self.lb = node(LB)
        self.args = [f"http://127.0.0.1{path}", SITE, marker or "-", f"{REMOTE}/stop", f"{REMOTE}/result.json"]
        self.args.append(str(connections))

    def __enter__(self):
        copy_scripts(self.lb, REMOTE, LOAD)
        quoted = " ".join(shlex.quote(arg) for arg in self.args)
        self.lb.check_output(f"setsid nohup python3 {REMOTE}/{LOAD.name} {quoted} >{REMOTE}/load.log 2>&1 </dev/null &")
        time.sleep(2)
        return self

    def __exit__(self, *exc):
        self.lb.check_output(f"touch {REMOTE}/stop")
        self.lb.check_output(f"timeout 120 sh -c 'until [ -s {REMOTE}/result.json ]; do sleep 0.5; done'")
        self.result = json.loads(self.lb.file(f"{REMOTE}/result.json").content_string)
        self.failures = [answer for answer in self.result["answers"] if not 200 <= answer["status"] < 300]


def server_status(name):
    """The app host's status on the balancer (UP, DOWN, MAINT...)."""
    stat = node(LB).check_output("python3 -c " + shlex.quote(SHOW_STAT))
    for row in stat.splitlines():
        fields = row.split(",")
        if fields[:2] == [APP, name]:
            return fields[17]
    raise AssertionError(f"{name} is not on the balancer: {stat}")


SHOW_STAT = (
    "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock'); "
    "s.sendall(b'show stat\\n'); print(b''.join(iter(lambda: s.recv(65536), b'')).decode())"
)


def test_a_rolling_redeploy_under_load_fails_no_request(tmp_path):
    marker = f"rolled-{uuid.uuid4().hex[:12]}"
    changed_app(tmp_path / "app", marker)
    started = time.monotonic()
    with BalancedLoad("/", marker) as load:
        result = converge(",".join([DB, *APPS, LB]), "django__source=local", f"django__local_path={tmp_path / 'app'}")
        seconds = round(time.monotonic() - started, 1)
    output = result.stdout + result.stderr
    answers = load.result["answers"]
    print(
        f"rolling deploy over {len(APPS)} app hosts: {seconds} s; {len(answers)} requests, "
        f"{len(load.failures)} failed; first new page at {next((a['at'] for a in answers if a['marked']), None)} s"
    )
    assert result.returncode == 0, output[-3000:]
    assert load.failures == [], load.failures[:20]
    # The database's and the balancer's plays ran a second time: they must
    # have found nothing to change.
    for name in (DB, LB):
        recap = re.search(rf"^{name}\s+:\s+ok=\d+\s+changed=(\d+)", output, re.M)
        assert recap and recap.group(1) == "0", (name, output[-3000:])
    for name in APPS:
        assert marker in inside(name, "/"), name
        assert server_status(name).startswith("UP"), name
    # One host at a time: the old code and the new one both answered
    # while the deploy rolled, and the new one last.
    assert any(not a["marked"] for a in answers) and answers[-1]["marked"]
    # Once, on the play's first host, in the first batch.
    migrated = [
        host
        for status, host in task_results(output, "django : Apply the release's database migrations")
        if status != "skipping"
    ]
    assert migrated == [APPS[0]], migrated


def test_a_failed_host_stops_the_rollout_and_goes_back_while_it_serves(tmp_path):
    """A release whose home page fails on the first app host: the play stops
    there, the second host never gets it, and the first, which still serves
    its live release, is back on the balancer. Visitors see no error."""
    marker = f"refused-{uuid.uuid4().hex[:12]}"
    app = changed_app(tmp_path / "app", marker)
    views = app / "notes/views.py"
    views.write_text(
        views.read_text().replace(
            "def home(request):\n", "def home(request):\n    raise RuntimeError('this release fails on purpose')\n"
        )
    )
    before = {name: inside(name, "/") for name in APPS}
    with BalancedLoad("/", connections=8) as load:
        result = converge(",".join([DB, *APPS, LB]), "django__source=local", f"django__local_path={app}")
    output = result.stdout + result.stderr
    print(f"refused rollout: {len(load.result['answers'])} requests, {len(load.failures)} failed")
    assert result.returncode != 0, output[-3000:]
    assert f"The deploy failed on {APPS[0]}" in " ".join(output.split()), output[-3000:]
    assert "stays offline" in output and "answered 500" in output
    for name in APPS:
        assert inside(name, "/") == before[name], name
        assert server_status(name).startswith("UP"), name
    # The second host's batch never ran.
    assert f"[{APPS[1]}]" not in output.split("PLAY [Serve the Django app through Apache]", 1)[1].split("PLAY RECAP")[0]
    assert load.failures == [], load.failures[:20]


def test_a_stopped_app_host_leaves_the_balancer_in_bounded_time():
    stopped = node(APPS[1])
    with BalancedLoad("/served-by/", connections=8) as load:
        time.sleep(3)
        at = float(stopped.check_output("date +%s.%N && systemctl stop apache2").split()[0])
        down = None
        try:
            for _ in range(600):
                if server_status(APPS[1]).startswith("DOWN"):
                    down = float(stopped.check_output("date +%s.%N"))
                    break
                time.sleep(0.1)
            time.sleep(3)
        finally:
            stopped.check_output("systemctl start apache2")
    assert down is not None, "the balancer never marked the stopped host down"
    window = round(down - at, 2)
    start = load.result["started"]
    in_window = [a for a in load.result["answers"] if at <= start + a["at"] <= down + 1]
    late = [a for a in load.result["answers"] if start + a["at"] > down + 1 and a["host"] == APPS[1]]
    print(
        f"failover: {APPS[1]} marked down {window} s after its Apache stopped; "
        f"{len(in_window)} requests in that window, {len(load.failures)} failed"
    )
    assert window <= FAILOVER_BOUND
    assert late == []
    for _ in range(300):
        if server_status(APPS[1]).startswith("UP"):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"{APPS[1]} did not come back on the balancer")
