"""What the Molecule verify tests of every scenario share: the tables of
modes and platforms they are driven by, and an HTTP client that talks to the
site through Apache from inside the host."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2]
APP = "sampleapp"
BASE_URL = "http://127.0.0.1"

# What proves each mode. `served_by` must be a subset of /served-by/'s answer;
# `traces` are paths that exist while the mode serves the app and must be
# gone once it does not; `processes` are `pgrep -f` patterns of what the mode
# leaves running; `runs_as` says who runs the app.
MODES = {
    "embedded": {
        "runs_as": "apache",
        "module": "wsgi_module",
        "served_by": {"mod_wsgi_process_group": "", "mod_wsgi_application_group": APP, "process_name": "apache2"},
        "traces": ["{conf}/mod_wsgi.conf"],
        "processes": [],
    },
    "daemon": {
        "runs_as": "app",
        "module": "wsgi_module",
        # display-name=%{GROUP} renames the daemon process's argv[0].
        "served_by": {"mod_wsgi_process_group": APP, "process_title": f"(wsgi:{APP})", "wsgi_multithread": True},
        "traces": ["{conf}/mod_wsgi.conf"],
        "processes": [rf"^\(wsgi:{APP}\)"],
    },
    "fastcgi": {
        "runs_as": "app",
        "module": "proxy_fcgi_module",
        "served_by": {"wsgate_front_end": "fastcgi", "process_name": "wsgate", "parent_process_name": "wsgate"},
        "traces": [
            f"/etc/systemd/system/wsgate-{APP}.socket",
            f"/etc/systemd/system/wsgate-{APP}.service",
            f"/run/wsgate/{APP}.sock",
            "{mods}/proxy_fcgi.load",
        ],
        "processes": ["wsgate fastcgi --bind systemd"],
    },
    "fcgid": {
        "runs_as": "apache",
        "module": "fcgid_module",
        "served_by": {"wsgate_front_end": "fcgid", "process_name": "wsgate", "parent_process_name": "apache2"},
        "traces": [f"/srv/{APP}/wsgate/app.fcgi", "{mods}/fcgid.load"],
        "processes": [],
    },
    "cgi": {
        "runs_as": "apache",
        "module": "cgid_module",
        "served_by": {"wsgate_front_end": "cgi", "wsgi_run_once": True, "parent_process_name": "apache2"},
        "traces": [f"/srv/{APP}/wsgate/app.cgi", "{mods}/cgid.load"],
        "processes": [],
    },
    "relay": {
        "runs_as": "apache",
        "module": "cgid_module",
        "served_by": {"wsgate_front_end": "relay", "wsgate_relay_backend": "warm", "wsgi_run_once": False},
        "traces": [f"/srv/{APP}/wsgate/app.cgi", f"/srv/{APP}/relay", "{mods}/cgid.load"],
        "processes": [f"unix:/srv/{APP}/relay/backend.sock"],
    },
}

# Platform facts, keyed by the distribution testinfra reports.
PLATFORMS = {
    "debian": {
        "service": "apache2",
        "ctl": "apache2ctl",
        "user": "www-data",
        "sites": "/etc/apache2/sites-enabled",
        "site_file": "/etc/apache2/sites-available/{name}.conf",
        "conf": "/etc/apache2/conf-enabled",
        "mods": "/etc/apache2/mods-enabled",
    },
}


def mode_of(host):
    """The mode a host must serve, from its name (`<mode>-d13`)."""
    return host.backend.get_hostname().rsplit("-", 1)[0]


def platform_of(host):
    return PLATFORMS[host.system_info.distribution]


def running(host, pattern):
    """Command lines of the host's processes that match a regex. Read from
    ps rather than pgrep -f, which would also match the shell that runs it."""
    return [line for line in host.check_output("ps -eo args=").splitlines() if re.search(pattern, line)]


def traces(mode, platform):
    return {path.format(**platform) for path in MODES[mode]["traces"]}


class Site:
    """Talks HTTP to the site from inside the host, through Apache."""

    def __init__(self, host, tmp, host_header=None):
        self.host = host
        self.jar = f"{tmp}/cookies"
        self.host_header = host_header

    def curl(self, path, *args):
        command = ["curl", "-sS", "--max-time", "60", "-b", self.jar, "-c", self.jar, *args, BASE_URL + path]
        if self.host_header:
            command[1:1] = ["-H", f"Host: {self.host_header}"]
        return self.host.check_output(" ".join(shlex.quote(arg) for arg in command))

    def get(self, path, *args):
        return self.curl(path, *args)

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

    def json(self, path, *args):
        return json.loads(self.get(path, *args))

    def csrf_token(self, path):
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', self.get(path))
        assert match, f"no CSRF token in the form at {path}"
        return match.group(1)


@pytest.fixture()
def site(host):
    tmp = host.check_output("mktemp -d")
    yield Site(host, tmp)
    host.run(f"rm -rf {shlex.quote(tmp)}")


def converge(limit, *extra_vars):
    """Run site.yml with the scenario's inventory, as a user would."""
    playbook = str(Path(sys.executable).parent / "ansible-playbook")
    args = [playbook, "site.yml", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--limit", limit]
    for assignment in extra_vars:
        args += ["-e", assignment]
    return subprocess.run(args, cwd=PROJECT, capture_output=True, text=True, check=False)


def inventory_hosts():
    """The scenario's hosts, from the inventory Molecule wrote."""
    inventory = yaml.safe_load(Path(os.environ["MOLECULE_INVENTORY_FILE"]).read_text())
    return sorted(inventory["vps"]["hosts"])
