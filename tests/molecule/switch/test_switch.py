"""Two hosts walk through every mode, side by side, under a bounded write
load, re-running site.yml as a user would: one from embedded to cgi, the
other on from cgi to embedded. After each step the new mode must serve,
nothing of the other modes may remain, and the data must belong to the user
that now runs the app. Then a second app joins the host back in embedded
mode, first in the same mode, then in another, and neither disturbs the
other. Each step runs on both hosts at once."""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import testinfra
from conftest import APP, MODES, Site, converge, platform_of, running, traces

SECOND = "secondapp"
# Per step, what each host does: switch the app to a mode, or add the
# second app in a mode. With the modes the scenario's converge gave them
# (embedded and cgi), the walks pass every mode to the next: embedded,
# daemon, fastcgi, fcgid, cgi, relay, embedded.
STEPS = [
    {"switch-d13": ("switch", "daemon"), "switch-d12": ("switch", "relay")},
    {"switch-d13": ("switch", "fastcgi"), "switch-d12": ("switch", "embedded")},
    {"switch-d13": ("switch", "fcgid"), "switch-d12": ("second", "embedded")},
    {"switch-d13": ("switch", "cgi"), "switch-d12": ("second", "daemon")},
]


def runs_as(host, mode, app=APP):
    return platform_of(host)["user"] if MODES[mode]["runs_as"] == "apache" else app


class Writer:
    """writer.py running inside the host during a converge."""

    def __init__(self, host):
        self.host = host
        self.dir = host.check_output("mktemp -d")
        host.check_output(f"chmod 755 {self.dir}")
        script = (Path(__file__).parent / "writer.py").read_text()
        host.check_output(f"cat > {self.dir}/writer.py <<'PYEOF'\n{script}\nPYEOF")

    def __enter__(self):
        self.host.check_output(
            f"setsid nohup python3 {self.dir}/writer.py {self.dir}/stop {self.dir}/result >/dev/null 2>&1 < /dev/null &"
        )
        return self

    def __exit__(self, *exc):
        self.host.check_output(f"touch {self.dir}/stop")
        # A write in flight may take its whole 30 s timeout first.
        self.host.check_output(f"timeout 300 sh -c 'until [ -s {self.dir}/result ]; do sleep 0.2; done'")
        self.result = json.loads(self.host.file(f"{self.dir}/result").content_string)
        self.host.run(f"rm -rf {self.dir}")


def switch(name, mode):
    """Re-run site.yml on one host in `mode` under the writer's load."""
    host = testinfra.get_host(f"podman://{name}")
    with Writer(host) as writer:
        result = converge(name, f"wsgi_deployment_mode={mode}")
    return host, result, writer.result


def add_second(name, mode):
    host = testinfra.get_host(f"podman://{name}")
    result = converge(
        name,
        f"wsgi_deployment_mode={mode}",
        f"django__name={SECOND}",
        "django__server_name=second.test",
        '{"django__server_aliases": []}',
    )
    return host, result, None


def check_switched(host, mode, result, writes):
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    counts = writes["counts"]
    print(
        f"{host.backend.get_hostname()} to {mode}: writes {counts} in {writes['seconds']} s, "
        f"failures within {writes['failure_window']} s {writes.get('failures_utc', '')}"
    )
    # Permission trouble during a switch shows as 500 (unable to open the
    # database file); the data stays usable by both users until the new
    # mode serves.
    assert counts.get("500", 0) == 0, (counts, errors_logged(host), output[-6000:])

    platform = platform_of(host)
    served = Site(host, host.check_output("mktemp -d")).json("/served-by/")
    for key, value in MODES[mode]["served_by"].items():
        assert served[key] == value, (key, served)
    assert served["user"] == runs_as(host, mode)

    mine = traces(mode, platform)
    for path in mine:
        assert host.file(path).exists, path
    for other in MODES:
        for path in traces(other, platform) - mine:
            assert not host.file(path).exists, (other, path)
        if other != mode:
            for pattern in MODES[other]["processes"]:
                assert not running(host, pattern), (other, pattern)
    assert MODES[mode]["module"] in host.check_output(f"{platform['ctl']} -M")

    runner = runs_as(host, mode)
    for path in (f"/srv/{APP}/data", f"/srv/{APP}/data/db.sqlite3", f"/srv/{APP}/media", f"/srv/{APP}/secret_key"):
        # The data is the runner's; the settings stay root's, readable by the runner.
        assert host.file(path).user == ("root" if path.endswith("secret_key") else runner), path
        assert "user:" not in host.check_output(f"getfacl -p --omit-header {path} | grep -v '^user::' || true"), path
    assert host.run(f"sudo -u {runner} -- test -r /srv/{APP}/secret_key").rc == 0


def errors_logged(host):
    """What Apache's error logs say of the app's errors: why a write failed."""
    return host.run(
        "grep -hE 'Error|rror:|denied|readonly|unable' /var/log/apache2/*error.log /var/log/httpd/*error_log "
        "2>/dev/null | tail -n 40"
    ).stdout


def answers_of(host, name, count=10):
    site = Site(host, host.check_output("mktemp -d"), name=name)
    return [site.json("/served-by/") for _ in range(count)]


def check_second(host, mode, result):
    """The second app answers for its name, as its own user; the first
    (embedded) one goes on answering for the default name."""
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    for answer in answers_of(host, "second.test"):
        assert answer["allowed_hosts"] == ["second.test"]
        assert answer["media_root"] == f"/srv/{SECOND}/media"
        assert answer["user"] == runs_as(host, mode, SECOND)
    for answer in answers_of(host, None):
        assert "vps.test" in answer["allowed_hosts"]
        assert answer["media_root"] == f"/srv/{APP}/media"
        assert answer["mod_wsgi_application_group"] == APP
    assert "WSGIRestrictEmbedded Off" in host.file(f"{platform_of(host)['conf']}/mod_wsgi.conf").content_string


@pytest.mark.parametrize("step", range(len(STEPS)), ids=lambda i: "+".join(f"{k}:{v[1]}" for k, v in STEPS[i].items()))
def test_step(step):
    actions = STEPS[step]
    with ThreadPoolExecutor(len(actions)) as pool:
        futures = {
            name: pool.submit(switch if kind == "switch" else add_second, name, mode)
            for name, (kind, mode) in actions.items()
        }
        done = {name: future.result() for name, future in futures.items()}
    for name, (kind, mode) in actions.items():
        host, result, writes = done[name]
        if kind == "switch":
            check_switched(host, mode, result, writes)
        else:
            check_second(host, mode, result)
