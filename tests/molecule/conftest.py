"""What the Molecule verify tests of every scenario share: the tables of
modes and platforms they are driven by, and an HTTP client that talks to the
site through Apache from inside the host."""

import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import testinfra
import yaml

PROJECT = Path(__file__).resolve().parents[2]
SAMPLE = PROJECT / "roles/django/files/sample_app"
APP = "sampleapp"

# What proves each mode. `served_by` must be a subset of /served-by/'s answer;
# `traces` are paths that exist while the mode serves the app and must be
# gone once it does not ({root} is the platform's app root, {conf} and {mods}
# its directories); `module_files` are the modules whose files are traces
# too, where the platform's row says how such a file is named; `processes`
# are regexes of the command lines the mode leaves running (who runs the app
# is playbooks/vars/modes.yml's `runs_as`, read by runs_as() below);
# `redeploy_without_failures` marks the modes whose redeploy under load must
# fail no request under `redeploy_connections` clients (16 unless the row
# says otherwise). The other modes' counts are printed, not asserted: one
# client shows that the new code arrives, and sixteen on every host at once
# would starve the 2-core test machine (the README's table was measured with
# sixteen, one mode at a time).
MODES = {
    "embedded": {
        "redeploy_without_failures": False,
        "redeploy_connections": 1,
        "module": "wsgi_module",
        "served_by": {"mod_wsgi_process_group": "", "mod_wsgi_application_group": APP, "process_name": "apache2"},
        "traces": ["{conf}/mod_wsgi.conf"],
        "module_files": [],
        "processes": [],
    },
    "daemon": {
        "redeploy_without_failures": True,
        "module": "wsgi_module",
        # display-name=%{GROUP} renames the daemon process's argv[0].
        "served_by": {"mod_wsgi_process_group": APP, "process_title": f"(wsgi:{APP})", "wsgi_multithread": True},
        "traces": ["{conf}/mod_wsgi.conf"],
        "module_files": [],
        "processes": [rf"^\(wsgi:{APP}\)"],
    },
    "fastcgi": {
        "redeploy_without_failures": True,
        "module": "proxy_fcgi_module",
        "served_by": {"wsgate_front_end": "fastcgi", "process_name": "wsgate", "parent_process_name": "wsgate"},
        "traces": [
            f"/etc/systemd/system/wsgate-{APP}.socket",
            f"/etc/systemd/system/wsgate-{APP}.service",
            f"/run/wsgate/{APP}.sock",
        ],
        "module_files": ["proxy_fcgi"],
        "processes": ["wsgate fastcgi --bind systemd"],
    },
    "fcgid": {
        "redeploy_without_failures": False,
        "redeploy_connections": 1,
        "module": "fcgid_module",
        "served_by": {"wsgate_front_end": "fcgid", "process_name": "wsgate", "parent_process_name": "apache2"},
        "traces": ["{root}/wsgate/app.fcgi"],
        "module_files": ["fcgid"],
        "processes": [],
    },
    "cgi": {
        "redeploy_without_failures": False,
        "redeploy_connections": 1,
        "module": "cgid_module",
        "served_by": {"wsgate_front_end": "cgi", "wsgi_run_once": True, "parent_process_name": "apache2"},
        "traces": ["{root}/wsgate/app.cgi"],
        "module_files": ["cgid"],
        "processes": [],
    },
    "relay": {
        "redeploy_without_failures": False,
        "redeploy_connections": 1,
        "module": "cgid_module",
        "served_by": {"wsgate_front_end": "relay", "wsgate_relay_backend": "warm", "wsgi_run_once": False},
        "traces": ["{root}/wsgate/app.cgi", "{root}/relay"],
        "module_files": ["cgid"],
        # Whatever the app root: the pattern is a regex, not a template.
        "processes": [rf"unix:\S*/{APP}/relay/backend\.sock"],
    },
}

# Platform facts. `root` is where the app lives, `app_user` who runs it when
# the mode runs it as the app, `media` where uploads are stored; `site_file`
# is the file the site's directives go to, `vhost_file` where `ctl -S` says
# the site's vhost is defined; `traces` replaces MODES' traces where the
# platform puts a mode's files elsewhere;
# `owner` owns the code and the settings; `server_name` is the name the site
# answers to, `userdata` the cPanel userdata whose `ip` its vhost is bound
# to (none: it answers on 127.0.0.1), `document_root` the vhost's document
# root, `scheme` how a visitor reaches the site (https: HTTP redirects
# there); `cgi_runs_as_owner` says whether CGI programs run as the site's
# owner rather than Apache's user, `requests_run_as_owner` whether Apache's
# children serve the site's requests as its owner (mod_ruid2, mpm-itk);
# `modules` replaces MODES' module where the platform serves a mode with
# another one. A check that does not apply to a platform is named in its
# `not_applicable`, with the reason, and the test says so.
# What the cPanel simulation rows share: EA4's layout and its Apache as
# nobody, the account acme and its domain, served over HTTPS with the
# certificate cPanel installed.
_EA4_SIM = {
    "service": "httpd",
    "ctl": "apachectl",
    "user": "nobody",
    "app_user": "acme",
    # The account owns its home, and its CGI runs as it.
    "owner": "acme",
    "root": f"/home/acme/{APP}",
    "server_name": "acme.test",
    "userdata": "/var/cpanel/userdata/acme/acme.test",
    "document_root": "/home/acme/public_html",
    "scheme": "https",
    "vhost_file": "/etc/apache2/conf/httpd.conf",
    "default_site": None,
    "conf": "/etc/apache2/conf.d",
    "mods": "/etc/apache2/conf.modules.d",
    "module_file": None,
    # cPanel's default profile: prefork, hence mod_cgi rather than mod_cgid.
    "mpm": "mpm_prefork_module",
    # The profile's identity switch runs CGI programs as the account.
    "cgi_runs_as_owner": True,
    "requests_run_as_owner": False,
    "modules": {"cgi": "cgi_module", "relay": "cgi_module"},
}
# What root's deploys on the simulation share.
_EA4_ROOT = {
    **_EA4_SIM,
    "media": f"/home/acme/{APP}/media",
    "sites": "/etc/apache2/conf.d/userdata/std/2_4/acme/acme.test",
    "site_file": "/etc/apache2/conf.d/userdata/std/2_4/acme/acme.test/{name}.conf",
    "traces": {},
    "not_applicable": {
        "account_path": "root deploys on this host: the account path's checks are for hosts named `*-cpacct`",
        "module_file_traces": (
            "the EA4 profile owns conf.modules.d: proxy_fcgi and cgi are loaded by the profile whatever "
            "the mode, so their files are no trace of a mode (test_sim_profile_module_files_stay checks "
            "that they stay)"
        ),
        "default_site": (
            "EA4 has no default-site file: its default vhost is generated into httpd.conf and must stay "
            "(test_sim_site_is_included_inside_the_account_vhosts checks the site's vhost instead)"
        ),
    },
}

PLATFORMS = {
    "debian": {
        "service": "apache2",
        "ctl": "apache2ctl",
        "user": "www-data",
        "app_user": APP,
        "owner": "root",
        "root": f"/srv/{APP}",
        "media": f"/srv/{APP}/media",
        "server_name": "vps.test",
        "document_root": f"/var/www/{APP}",
        "sites": "/etc/apache2/sites-enabled",
        "site_file": "/etc/apache2/sites-available/{name}.conf",
        "vhost_file": f"/etc/apache2/sites-enabled/{APP}.conf",
        "default_site": "/etc/apache2/sites-enabled/000-default.conf",
        "conf": "/etc/apache2/conf-enabled",
        "mods": "/etc/apache2/mods-enabled",
        "module_file": "{mods}/{module}.load",
        "mpm": "mpm_event_module",
        "cgi_runs_as_owner": False,
        "requests_run_as_owner": False,
        "modules": {},
        "traces": {},
        "not_applicable": {},
    },
    # EL hosts of the `distros` scenario, which only runs where public images
    # can be pulled (not in `make test`): the httpd package's layout.
    "el": {
        "service": "httpd",
        "ctl": "apachectl",
        "user": "apache",
        "app_user": APP,
        "owner": "root",
        "root": f"/srv/{APP}",
        "media": f"/srv/{APP}/media",
        "server_name": "vps.test",
        "document_root": f"/var/www/{APP}",
        "sites": "/etc/httpd/conf.d",
        "site_file": "/etc/httpd/conf.d/{name}.conf",
        "vhost_file": f"/etc/httpd/conf.d/{APP}.conf",
        "default_site": "/etc/httpd/conf.d/welcome.conf",
        "conf": "/etc/httpd/conf.d",
        "mods": "/etc/httpd/conf.modules.d",
        # The vendor's files load most modules; ours are named 99-ansible-*.
        "module_file": None,
        "mpm": "mpm_event_module",
        "cgi_runs_as_owner": False,
        "requests_run_as_owner": False,
        "modules": {},
        "traces": {},
        "not_applicable": {
            "module_file_traces": "the httpd package's own conf.modules.d files load most modules whatever the mode",
        },
    },
    # Hosts named `<mode>-cpitk`: Debian 12 laid out as cPanel's EasyApache 4
    # (molecule/cpanel-sim/prepare.yml) with the identity switch of cPanel's
    # default profile (mod_ruid2, here mpm-itk): Apache's children serve
    # the account's requests as the account. The app belongs to the account
    # acme and its site is an include inside the vhosts cPanel generates.
    "cpanel-itk": {**_EA4_ROOT, "profile": "itk", "requests_run_as_owner": True},
    # Hosts named `<mode>-cpsuexec`: the same with mod_suexec, which runs
    # only CGI programs as the account; Apache's children stay nobody.
    "cpanel-suexec": {**_EA4_ROOT, "profile": "suexec"},
    # Hosts named `<mode>-cpacct`: the same simulation, deployed by the
    # account acme itself, without root (`ansible_become: false`). The play
    # writes only into /home/acme: the code, virtualenv and data under
    # ~/sampleapp, static files and uploads under the document root, the CGI
    # entry point in its cgi-bin and the site as a block in its .htaccess.
    "cpanel-account": {
        **_EA4_SIM,
        "profile": "itk",
        "public": "/home/acme/public_html",
        "media": "/home/acme/public_html/media",
        "static": "/home/acme/public_html/static",
        "sites": None,
        "site_file": "/home/acme/public_html/.htaccess",
        # cgi and relay share the entry point in the document root's cgi-bin.
        "traces": {
            "cgi": [f"/home/acme/public_html/cgi-bin/{APP}.cgi"],
            "relay": [f"/home/acme/public_html/cgi-bin/{APP}.cgi", "{root}/relay"],
        },
        "not_applicable": {
            "module_file_traces": (
                "the EA4 profile owns conf.modules.d, and an account cannot load modules "
                "(test_sim_profile_module_files_stay checks that the profile's files stay)"
            ),
            "default_site": "EA4 has no default-site file, and an account cannot remove one",
            "site_include": (
                "the account writes no server configuration: its site is a block in the document root's "
                ".htaccess (test_sim_account_htaccess_keeps_the_account_s_own_rules checks it)"
            ),
            "root_commands": "the account deploys without root: its plays run nothing as root",
            "rejected_config": (
                "the account path writes no site file that a configtest checks (apache__site_extra_directives "
                "is root's): Apache reads an .htaccess per request, so a bad directive there is a 500, not a "
                "failed reload (test_sim_account_refuses_a_mode_that_needs_root shows its early refusal instead)"
            ),
        },
    },
}

# Host name suffix -> the row of the hosts named so, whatever their
# distribution.
SUFFIXES = {"-cpitk": "cpanel-itk", "-cpsuexec": "cpanel-suexec", "-cpacct": "cpanel-account"}


# Scenarios whose hosts serve two modes run a side effect between two
# verify steps (molecule/shared/switch.yml): each host switches to the mode
# its `switch_to` names, and this file says it did.
SWITCHED = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "switched"


def switched():
    return SWITCHED.exists()


def host_vars(name):
    """The host's own variables in the scenario's inventory (Molecule writes
    them to host_vars/ beside it)."""
    path = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent / "host_vars" / name
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def mode_of(host):
    """The mode a host must serve: the one its name starts with
    (`<mode>-d13`), or after the switch the one its switch_to names."""
    name = host.backend.get_hostname()
    if switched():
        return host_vars(name)["switch_to"]
    return name.rsplit("-", 1)[0]


# The checks reach a host as root over SSH, on the port its inventory
# publishes, through one connection per host that every command shares: a
# `podman exec` per command cost 35 ms of CPU where a shared SSH connection
# costs a few, over some ten thousand commands in make test. The verifier's
# `ssh-config` option names this file; pytest_configure writes it.
SSH_CONFIG = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "ssh_config"
_connection = {}


def _every_host(group):
    """The hosts of an inventory group and of the groups under it."""
    names = set((group.get("hosts") or {}).keys())
    for child in (group.get("children") or {}).values():
        names |= _every_host(child or {})
    return names


def _write_ssh_config():
    inventory = yaml.safe_load(Path(os.environ["MOLECULE_INVENTORY_FILE"]).read_text())
    blocks = []
    for name in sorted(set().union(*(_every_host(group or {}) for group in inventory.values()))):
        own = host_vars(name)
        if own.get("ansible_connection") != "ssh":
            continue
        key = own.get("ansible_ssh_private_key_file") or os.environ["VPS_SSH_KEY"]
        blocks.append(
            f"Host {name}\n  HostName {own['ansible_host']}\n  Port {own['ansible_port']}\n  User root\n"
            f"  IdentityFile {key}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n"
            f"  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  ControlPath {SSH_CONFIG.parent}/ssh-%p\n"
        )
    # Every xdist worker writes it too: whole or not at all.
    partial = SSH_CONFIG.with_name(f"{SSH_CONFIG.name}.{os.getpid()}")
    partial.write_text("".join(blocks))
    partial.replace(SSH_CONFIG)


def node(name):
    """The scenario's host `name`, reached as the verifier reaches its hosts."""
    if _connection.get("name") == "ssh":
        return testinfra.get_host(f"ssh://{name}", ssh_config=str(SSH_CONFIG))
    return testinfra.get_host(f"{_connection.get('name', 'podman')}://{name}")


def pytest_configure(config):
    config.addinivalue_line("markers", "before_switch: runs only before the scenario's hosts switch modes")
    config.addinivalue_line("markers", "after_switch: runs only once the scenario's hosts switched modes")
    _connection["name"] = getattr(config.option, "connection", None) or "podman"
    if _connection["name"] == "ssh" and "MOLECULE_INVENTORY_FILE" in os.environ:
        _write_ssh_config()


def pytest_collection_modifyitems(config, items):
    """Before the switch, the tests marked after_switch stay out; after it,
    those marked before_switch. Every other test checks the host in the
    mode it serves, in each phase."""
    unwanted = "before_switch" if switched() else "after_switch"
    kept = [item for item in items if item.get_closest_marker(unwanted) is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


def platform_row(name):
    """The row of a host named `name`, where its name decides it (SUFFIXES)."""
    for suffix, row in SUFFIXES.items():
        if name.endswith(suffix):
            return PLATFORMS[row]
    return None


# testinfra's distribution names of the EL family.
EL_DISTRIBUTIONS = {"centos", "almalinux", "rocky", "redhat", "rhel", "ol", "cloudlinux"}


def platform_of(host):
    """The host's row: the simulation's for hosts named as SUFFIXES says,
    whatever their distribution, otherwise the distribution's
    (the EL family shares one)."""
    distribution = host.system_info.distribution
    return (
        platform_row(host.backend.get_hostname())
        or PLATFORMS["el" if distribution in EL_DISTRIBUTIONS else distribution]
    )


def applies(platform, check):
    """Whether a check applies to the platform (see not_applicable)."""
    return not platform["not_applicable"].get(check)


def not_applicable(platform, check):
    """Skip a check the platform's row marks as not applicable, with its reason."""
    reason = platform["not_applicable"].get(check)
    if reason:
        pytest.skip(f"not applicable here: {reason}")


def module_of(mode, platform):
    """The module that must be loaded for the mode on the platform."""
    return platform["modules"].get(mode, MODES[mode]["module"])


MODE_TABLE = yaml.safe_load((PROJECT / "playbooks/vars/modes.yml").read_text())["site__modes"]


def runs_as(mode, platform):
    """The user the mode runs the app as on the platform, by the mode
    table's `runs_as`: the app's user, or Apache's child or CGI program,
    which is the site's owner where the platform switches to it."""
    who = MODE_TABLE[mode]["runs_as"]
    as_owner = (
        who == "app"
        or (who == "cgi" and platform["cgi_runs_as_owner"])
        or (who == "apache" and platform["requests_run_as_owner"])
    )
    return platform["app_user"] if as_owner else platform["user"]


def running(host, pattern):
    """Command lines of the host's processes that match a regex. Read from
    ps rather than pgrep -f, which would also match the shell that runs it."""
    return [line for line in host.check_output("ps -eo args=").splitlines() if re.search(pattern, line)]


def traces(mode, platform):
    """Paths that exist while the mode serves the app on the platform. Module
    files count only where the row names them (see its not_applicable)."""
    paths = {path.format(**platform) for path in platform["traces"].get(mode, MODES[mode]["traces"])}
    if platform["module_file"]:
        paths |= {platform["module_file"].format(module=name, **platform) for name in MODES[mode]["module_files"]}
    return paths


def address_of(host, platform):
    """The address the site's vhost answers on: where the row names the
    account's cPanel userdata, the IP there (cPanel binds an account's vhosts
    to it, and 127.0.0.1 reaches another vhost); 127.0.0.1 elsewhere."""
    userdata = platform.get("userdata")
    if not userdata:
        return "127.0.0.1"
    address = host.check_output(f"sed -n 's/^ip: *//p' {shlex.quote(userdata)}").strip()
    assert address, f"no ip in {userdata}"
    return address


def curl_prefix(host, platform, scheme=None, name=None):
    """A curl command line up to the path: the site's name in the URL, so
    that it goes in Host and, over HTTPS, in SNI, and --connect-to the
    address its vhost answers on; the scheme is the row's unless named.
    `name` is another site of the host."""
    scheme = scheme or platform.get("scheme", "http")
    name = name or platform["server_name"]
    insecure = "-k " if scheme == "https" else ""
    return f"curl -sS --max-time 60 {insecure}--connect-to ::{address_of(host, platform)}: {scheme}://{name}"


class Site:
    """Talks HTTP (or HTTPS) to the site from inside the host, through
    Apache, as a visitor reaches it."""

    def __init__(self, host, tmp, scheme=None, name=None):
        platform = platform_of(host)
        self.host = host
        self.jar = f"{tmp}/cookies"
        self.scheme = scheme or platform.get("scheme", "http")
        self.name = name or platform["server_name"]
        self.prefix = curl_prefix(host, platform, self.scheme, self.name)

    def curl(self, path, *args):
        # Django checks the Referer of a form posted over HTTPS.
        referer = f"{self.scheme}://{self.name}{path}"
        extra = " ".join(shlex.quote(arg) for arg in ("-e", referer, "-b", self.jar, "-c", self.jar, *args))
        return self.host.check_output(f"{self.prefix}{shlex.quote(path)} {extra}")

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


# Molecule forces colour on the plays it runs; the tests read the output of
# their own plays line by line (recaps, fatal lines), so they ask for none.
HTTP_ANSWER = Path(__file__).with_name("http_answer.py")


def copy_scripts(host, remote, *scripts):
    """Copies the scripts, and http_answer.py that they import, into the
    host's directory `remote`, made afresh."""
    host.check_output(f"rm -rf {remote} && mkdir -p {remote}")
    for script in (*scripts, HTTP_ANSWER):
        host.check_output(f"cat > {remote}/{script.name} <<'PYEOF'\n{script.read_text()}\nPYEOF")


PLAIN_OUTPUT = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}


def _site_command(limit, extra_vars, options):
    playbook = str(Path(sys.executable).parent / "ansible-playbook")
    args = [playbook, "site.yml", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--limit", limit, *options]
    for assignment in extra_vars:
        args += ["-e", assignment]
    return args


def converge(limit, *extra_vars, options=()):
    """Run site.yml with the scenario's inventory, as a user would;
    `options` go to ansible-playbook as they are (--check, --diff)."""
    args = _site_command(limit, extra_vars, options)
    return subprocess.run(args, cwd=PROJECT, env=PLAIN_OUTPUT, capture_output=True, text=True, check=False)


def converge_interrupted(limit, after, *extra_vars):
    """Run site.yml as `converge` does, one task at a time (--step), and
    kill it, as a lost connection or a ^C would, at the first handler that
    comes after the banner of task `after`: everything before has run,
    nothing of that flush has. Returns the output up to there."""
    play = subprocess.Popen(
        _site_command(limit, extra_vars, ["--step"]),
        cwd=PROJECT,
        env=PLAIN_OUTPUT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output, passed = b"", False
    try:
        # A step's prompt ends without a newline: read what comes.
        while chunk := os.read(play.stdout.fileno(), 65536):
            output += chunk
            passed = passed or f"TASK [{after}]".encode() in output
            if not output.endswith(b"(N)o/(y)es/(c)ontinue: "):
                continue
            prompt = output[output.rfind(b"Perform task:") :]
            if passed and prompt.startswith(b"Perform task: HANDLER:"):
                return output.decode()
            play.stdin.write(b"y\n")
            play.stdin.flush()
        raise AssertionError(f"the play ended before a handler after {after!r}:\n{output.decode()[-3000:]}")
    finally:
        if play.poll() is None:
            os.killpg(play.pid, signal.SIGKILL)
        play.wait()


def inventory_hosts():
    """The scenario's hosts, from the inventory Molecule wrote."""
    inventory = yaml.safe_load(Path(os.environ["MOLECULE_INVENTORY_FILE"]).read_text())
    return sorted(inventory["vps"]["hosts"])


@pytest.fixture()
def whole_scenario():
    """Held by the tests that run a play over every host of the scenario:
    they take turns, since two plays on one host at once would race, while
    the per-host checks go on beside them."""
    lock = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp")) / "whole-scenario.lock"
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def changed_app(path, marker):
    """A copy of the sample app whose home page carries `marker`: new code
    for a deploy, and a way to see which release answered."""
    shutil.copytree(SAMPLE, path, ignore=shutil.ignore_patterns("__pycache__"))
    home = path / "notes/templates/notes/home.html"
    home.write_text(
        home.read_text().replace("<h1>Django sample app</h1>", f"<h1>Django sample app</h1>\n<p>{marker}</p>")
    )
    return path
