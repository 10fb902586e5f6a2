"""One host walks from embedded through every mode and back, under a bounded
write load, re-running site.yml as a user would. After each step the new
mode must serve, nothing of the other modes may remain, and the data must
belong to the user that now runs the app. Then a second app joins the host,
first in the same mode, then in another, and neither disturbs the other."""

import json
from pathlib import Path

import pytest
from conftest import APP, MODES, Site, converge, platform_of, running, traces

# From the scenario's converge (embedded) through every other mode and back.
WALK = ["daemon", "fastcgi", "fcgid", "cgi", "relay", "embedded"]
SECOND = "secondapp"


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
        self.host.check_output(f"timeout 60 sh -c 'until [ -s {self.dir}/result ]; do sleep 0.2; done'")
        self.result = json.loads(self.host.file(f"{self.dir}/result").content_string)
        self.host.run(f"rm -rf {self.dir}")


@pytest.mark.parametrize("mode", WALK)
def test_switch(host, mode):
    hostname = host.backend.get_hostname()
    with Writer(host) as writer:
        result = converge(hostname, f"wsgi_deployment_mode={mode}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    counts = writer.result["counts"]
    print(
        f"switch to {mode}: writes {counts} in {writer.result['seconds']} s, "
        f"failures within {writer.result['failure_window']} s"
    )
    # Permission trouble during a switch shows as 500 (unable to open the
    # database file); the data stays usable by both users until the new
    # mode serves.
    assert counts.get("500", 0) == 0, counts

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


def answers_of(host, host_header, count=10):
    site = Site(host, host.check_output("mktemp -d"), host_header=host_header)
    return [site.json("/served-by/") for _ in range(count)]


@pytest.mark.parametrize("second_mode", ["embedded", "daemon"])
def test_a_second_app_on_the_host(host, second_mode):
    """Two apps, the first in embedded mode; the second joins in the same mode
    (each gets an interpreter of its own), then moves to daemon mode."""
    result = converge(
        host.backend.get_hostname(),
        f"wsgi_deployment_mode={second_mode}",
        f"django__name={SECOND}",
        "django__server_name=second.test",
        '{"django__server_aliases": []}',
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    for answer in answers_of(host, "second.test"):
        assert answer["allowed_hosts"] == ["second.test"]
        assert answer["media_root"] == f"/srv/{SECOND}/media"
        assert answer["user"] == runs_as(host, second_mode, SECOND)
    for answer in answers_of(host, None):
        assert "vps.test" in answer["allowed_hosts"]
        assert answer["media_root"] == f"/srv/{APP}/media"
        assert answer["mod_wsgi_application_group"] == APP
    assert "WSGIRestrictEmbedded Off" in host.file(f"{platform_of(host)['conf']}/mod_wsgi.conf").content_string
