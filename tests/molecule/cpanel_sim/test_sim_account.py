"""The account path of the cPanel EA4 layout SIMULATION (hosts `*-cpacct`):
the play connected as the account acme, without root, and must have
deployed into /home/acme only, served through a CGI entry point in the
document root's cgi-bin that runs as the account (through suEXEC, or in
the itk profile's request, which is the account's), routed by a block of
its own in the document root's .htaccess. The shared tests in ../site
check the site itself through the PLATFORMS row `cpanel-account`."""

import json
import re
import shlex

import pytest
from conftest import (
    APP,
    MODES,
    PLATFORMS,
    converge,
    curl_prefix,
    inventory_hosts,
    mode_of,
    node,
    not_applicable,
    platform_of,
    running,
)
from test_cpanel_sim import simulated_profile

ACCOUNT = PLATFORMS["cpanel-account"]
USER = ACCOUNT["app_user"]
HOME = f"/home/{USER}"
PUBLIC = ACCOUNT["public"]
HTACCESS = ACCOUNT["site_file"]
ENTRY = f"{PUBLIC}/cgi-bin/{APP}.cgi"
# What prepare.yml left for these checks (root's, outside the account).
PREPARED = "/root/cpanel-sim"
HTTPD_CONF = "/etc/apache2/conf/httpd.conf"
BEGIN = f"# BEGIN django-apache-vps: {APP}"
END = f"# END django-apache-vps: {APP}"
# The line prepare.yml put in the .htaccess before the deployment.
OWN_RULE = "DirectoryIndex index.html index.cgi"


@pytest.fixture()
def account(host):
    """The host, if the account deployed it; other hosts skip, saying why."""
    not_applicable(platform_of(host), "account_path")
    return host


def test_sim_account_layout_is_in_the_home(account):
    """Releases, virtualenvs and data under ~/sampleapp; static files and uploads
    under the document root, at their URLs; all the account's."""
    root = ACCOUNT["root"]
    for path in (f"{root}/current/app", f"{root}/current/venv/", f"{root}/data", ACCOUNT["static"], ACCOUNT["media"]):
        directory = account.file(path)
        assert directory.is_directory, path
        assert directory.user == USER, path
    assert "sample-app-css" in account.file(f"{ACCOUNT['static']}/notes/style.css").content_string
    assert not account.file(f"/srv/{APP}").exists


def test_sim_account_htaccess_keeps_the_account_s_own_rules(account):
    htaccess = account.file(HTACCESS)
    assert htaccess.user == USER
    lines = htaccess.content_string.splitlines()
    assert lines.count(BEGIN) == 1 and lines.count(END) == 1, lines
    begin, end = lines.index(BEGIN), lines.index(END)
    block, outside = lines[begin + 1 : end], lines[:begin] + lines[end + 1 :]
    # prepare.yml's lines are still there, outside the play's block.
    assert OWN_RULE in outside, lines
    assert "# The account's own rules, written before the deployment." in outside, lines
    # Every path but /static/ and /media/ (and the entry point itself) goes to the entry point.
    assert "RewriteEngine On" in block
    assert r"RewriteCond %{REQUEST_URI} !^/static/" in block
    assert r"RewriteCond %{REQUEST_URI} !^/media/" in block
    assert f"RewriteRule ^ /cgi-bin/{APP}.cgi%{{REQUEST_URI}} [L]" in block


def test_sim_account_entry_point_runs_as_the_account(account):
    """The entry point is the account's, and only it can write it or its
    directory: suEXEC requires that (under its document root, /home for
    caller nobody here), and under the itk profile the request that runs
    it is the account's already."""
    entry = account.file(ENTRY)
    assert entry.is_file
    assert (entry.user, entry.group) == (USER, USER)
    assert entry.mode & 0o022 == 0 and entry.mode & 0o100, oct(entry.mode)
    cgi_bin = account.file(f"{PUBLIC}/cgi-bin")
    assert cgi_bin.user == USER
    assert cgi_bin.mode & 0o022 == 0, oct(cgi_bin.mode)
    modules = account.check_output(f"{ACCOUNT['ctl']} -M")
    if simulated_profile(account) == "suexec":
        assert "suexec_module" in modules
        assert account.file("/etc/apache2/suexec/nobody").content_string.splitlines()[0] == "/home"
    else:
        assert "mpm_itk_module" in modules and "suexec_module" not in modules
    # Nothing of the root path's entry points.
    assert not account.file(f"{ACCOUNT['root']}/wsgate/app.cgi").exists


def test_sim_account_wrote_nothing_outside_its_home(account):
    # No site include, no module, no unit, no record of the deployed mode.
    userdata = "/etc/apache2/conf.d/userdata"
    assert account.check_output(f"find {userdata} -name '{APP}*' 2>/dev/null || true") == ""
    assert not account.file(f"{userdata}/std/2_4/{USER}/acme.test/{APP}.conf").exists
    assert not account.file("/etc/ansible/facts.d/django_vps.fact").exists
    assert not account.file(f"/etc/systemd/system/wsgate-{APP}.service").exists
    # httpd.conf is exactly what prepare left.
    assert account.file(HTTPD_CONF).content_string == account.file(f"{PREPARED}/httpd.conf").content_string
    # Nothing in the server's configuration or software changed since prepare.
    changed = account.check_output(
        f"find /etc /usr /opt /srv /var/cpanel /var/www -xdev -newer {PREPARED}/prepared -print 2>/dev/null || true"
    )
    assert changed == "", changed
    # The account owns nothing outside its home but what it may leave in the temporary directories.
    owned = account.check_output(
        "find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o -path /var/tmp "
        f"-o -path {HOME} -o -path /var/spool/cron \\) -prune -o -user {USER} -print 2>/dev/null || true"
    )
    assert owned == "", owned


def test_sim_account_backend_runs_as_the_account(account, site):
    """In relay, the warm backend runs as the account; after a switch to
    cgi, none runs (what the relay left is retired)."""
    served = site.json("/served-by/")
    assert served["user"] == USER
    mode = mode_of(account)
    assert served["wsgate_front_end"] == mode
    (pattern,) = MODES["relay"]["processes"]
    if mode != "relay":
        assert not running(account, pattern), pattern
        return
    assert running(account, pattern), pattern
    backends = [
        line.split(None, 1)
        for line in account.check_output("ps -eo user=,args=").splitlines()
        if re.search(pattern, line)
    ]
    assert backends and {user for user, _ in backends} == {USER}, backends
    # Its private directory, in the account's home.
    relay = account.file(f"{ACCOUNT['root']}/relay")
    assert relay.user == USER and relay.mode == 0o700


def test_sim_account_uploads_are_served_never_run(account, site):
    media = ACCOUNT["media"]
    htaccess = account.file(f"{media}/.htaccess")
    assert htaccess.user == USER
    assert "SetHandler default-handler" in htaccess.content_string
    assert "Options -ExecCGI" in htaccess.content_string
    # A program among the uploads comes back as its text.
    probe = f"{media}/probe-{APP}.cgi"
    script = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\necho ran-$((6*7))\n"
    account.check_output(
        f"runuser -u {USER} -- sh -c {shlex.quote(f'printf %s {shlex.quote(script)} > {probe} && chmod 755 {probe}')}"
    )
    try:
        body = site.get(f"/media/probe-{APP}.cgi")
    finally:
        account.run(f"rm -f {probe}")
    assert "ran-$((6*7))" in body and "ran-42" not in body, body


@pytest.mark.before_switch
def test_sim_account_refuses_a_mode_that_needs_root():
    """The account asks for daemon: the play stops before it changes
    anything, naming the modes an account can use, and the site keeps
    serving in relay."""
    names = [name for name in inventory_hosts() if platform_of(node(name)) is ACCOUNT]
    if not names:
        pytest.skip("no host here is deployed by the account")
    for name in names:
        h = node(name)
        before = h.file(HTACCESS).content_string
        result = converge(name, "wsgi_deployment_mode=daemon")
        # Without the colours a terminal-like environment turns on.
        output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
        assert result.returncode != 0, output
        assert re.search(rf"fatal: \[{re.escape(name)}\]", output), output
        # The callback may wrap the message: compare its words.
        words = " ".join(output.split())
        assert "wsgi_deployment_mode=daemon needs root" in words, output
        assert "Without root a cPanel account can use cgi or relay" in words, output
        assert re.search(rf"{re.escape(name)}\s*:.*\bchanged=0\b.*\bfailed=1\b", output), output
        assert h.file(HTACCESS).content_string == before
        served = json.loads(h.check_output(f"{curl_prefix(h, ACCOUNT)}/served-by/"))
        assert served["wsgate_front_end"] == "relay", served


@pytest.mark.before_switch
def test_sim_an_account_without_the_cgi_privilege_is_refused_before_anything_changes():
    """The account `nocgi`'s package has no CGI privilege (userdata hascgi 0:
    its vhost runs no CGI), and without root the app runs only as CGI: the
    play asks Apache with a probe it removes again, stops, and says what to
    ask the admin for; the account's home is as it was."""
    names = [name for name in inventory_hosts() if platform_of(node(name)) is ACCOUNT]
    if not names:
        pytest.skip("no host here is deployed by an account")
    for name in names:
        h = node(name)
        # Every path, and each file's size and time (the probe's directory
        # changes its own time, which is no change to what it holds), but
        # ~/.ansible: Ansible's own working directory, made by any play that
        # logs in, whatever it does.
        listing = (
            "find /home/nocgi -path /home/nocgi/.ansible -prune -o -type f -printf '%p %s %T@\\n' "
            "-o -printf '%p\\n' | sort"
        )
        before = h.check_output(listing)
        result = converge(name, "ansible_user=nocgi", "cpanel__domain=nocgi.test", "django__server_name=nocgi.test")
        output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
        words = " ".join(output.split())
        assert result.returncode != 0, output[-3000:]
        assert "nocgi may not run CGI programs on nocgi.test" in words, output[-3000:]
        assert "CGI Privilege" in words and "Nothing was changed" in words, output[-3000:]
        assert re.search(rf"{re.escape(name)}\s*:.*\bchanged=0\b.*\bfailed=1\b", output), output[-3000:]
        assert h.check_output(listing) == before
