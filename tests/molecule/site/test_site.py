"""Verify each converged container of the `modes` and `cpanel-sim` scenarios:
Apache, the sample app through Apache, and the proof of the mode that served
it. Driven by the MODES and PLATFORMS tables; the mode comes from the host's
name, the platform from its name (`*-cpitk`, `*-cpsuexec`, `*-cpacct`) or its
distribution."""

import hashlib
import json
import os
import re
import shlex
import uuid
from pathlib import Path

import pytest
from conftest import (
    APP,
    MODES,
    Site,
    applies,
    converge,
    copy_scripts,
    curl_prefix,
    inventory_hosts,
    mode_of,
    module_of,
    node,
    not_applicable,
    platform_of,
    running,
    runs_as,
    traces,
)


def test_apache_is_running_and_enabled(host):
    service = host.service(platform_of(host)["service"])
    assert service.is_running
    assert service.is_enabled


def test_configtest_passes(host):
    result = host.run(f"{platform_of(host)['ctl']} -t")
    assert result.rc == 0, result.stderr
    assert "Syntax OK" in result.stderr


def test_the_mode_s_module_is_loaded(host):
    platform = platform_of(host)
    modules = host.check_output(f"{platform['ctl']} -M")
    assert module_of(mode_of(host), platform) in modules
    assert platform["mpm"] in modules


def test_module_files_are_traces_of_the_mode(host):
    """The files that load a mode's modules come and go with the mode, where
    the platform lets a mode own them."""
    platform = platform_of(host)
    not_applicable(platform, "module_file_traces")
    mode = mode_of(host)
    for name in MODES[mode]["module_files"]:
        assert host.file(platform["module_file"].format(module=name, **platform)).exists, name


def test_only_this_mode_s_traces_exist(host):
    platform = platform_of(host)
    mine = traces(mode_of(host), platform)
    for path in mine:
        assert host.file(path).exists, path
    for mode in MODES:
        for path in traces(mode, platform) - mine:
            assert not host.file(path).exists, path


def test_one_vhost_file_for_the_site(host):
    platform = platform_of(host)
    vhosts = host.check_output(f"{platform['ctl']} -S")
    assert platform["server_name"] in vhosts
    assert platform["vhost_file"] in vhosts


def test_the_distribution_s_default_site_is_gone(host):
    platform = platform_of(host)
    not_applicable(platform, "default_site")
    assert not host.file(platform["default_site"]).exists


def test_hardening(site):
    status, headers = site.headers("/")
    assert status == 200
    assert headers["server"] == "Apache"
    assert site.status("/", "-X", "TRACE") == 405


def test_home_page(site):
    assert "Django sample app" in site.get("/")


def test_static_file_is_served_by_apache(site):
    status, headers = site.headers("/static/notes/style.css")
    assert status == 200
    assert "sample-app-css" in site.get("/static/notes/style.css")
    # Apache's own file handler offers byte ranges; Django, which would
    # serve static files only with DEBUG on, does not.
    assert headers.get("accept-ranges") == "bytes", headers
    _, page_headers = site.headers("/")
    assert "accept-ranges" not in page_headers
    assert page_headers.get("x-content-type-options") == "nosniff"


def test_notes_post_with_csrf_writes_and_reads_back(site):
    text = f"note-{uuid.uuid4().hex}"
    token = site.csrf_token("/notes/")
    status = site.status("/notes/", "-d", f"csrfmiddlewaretoken={token}&text={text}")
    assert status in (302, 303)
    assert text in site.get("/notes/")


def test_post_without_csrf_token_is_refused(site):
    text = f"forged-{uuid.uuid4().hex}"
    assert site.status("/notes/", "-d", f"text={text}") == 403
    assert text not in site.get("/notes/")


def test_upload_of_20_mb_is_stored_and_served_back(host, site):
    upload = host.check_output("mktemp")
    host.check_output(f"head -c 20971520 /dev/urandom > {upload}")
    digest = host.check_output(f"sha256sum {upload}").split()[0]
    token = site.csrf_token("/upload/")
    page = site.curl("/upload/", "-F", f"csrfmiddlewaretoken={token}", "-F", f"file=@{upload};filename=big.bin")
    assert re.search(rf'id="upload-sha256"[^>]*>\s*{digest}', page), page[:2000]
    assert re.search(r'id="upload-size"[^>]*>\s*20971520\b', page), page[:2000]
    name = re.search(r'id="upload-name"[^>]*>\s*([^<\s]+)', page).group(1)
    served = host.check_output(f"{site.prefix}/media/{name} | sha256sum").split()[0]
    assert served == digest
    host.run(f"rm -f {upload}")


def test_authorization_header_reaches_django(site):
    credentials = f"Bearer {uuid.uuid4().hex}"
    served = site.json("/served-by/", "-H", f"Authorization: {credentials}")
    assert served["authorization_sha256"] == hashlib.sha256(credentials.encode()).hexdigest()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_domain_validation_files_are_served_from_the_document_root(host, scheme):
    """What a certificate authority asks for (AutoSSL's and Sectigo's DCV,
    ACME's HTTP-01) is the document root's file, whatever the mode maps /
    to, and plain HTTP does not redirect it."""
    platform = platform_of(host)
    if scheme == "https" and platform.get("scheme") != "https":
        pytest.skip("not applicable here: the site has no HTTPS on this platform's hosts")
    site = Site(host, host.check_output("mktemp -d"), scheme=scheme)
    token = uuid.uuid4().hex
    directory = f"{platform['document_root']}/.well-known/pki-validation"
    host.check_output(f"mkdir -p {directory} && printf %s {token} > {directory}/{token}.txt")
    try:
        assert site.status(f"/.well-known/pki-validation/{token}.txt") == 200
        assert site.get(f"/.well-known/pki-validation/{token}.txt") == token
    finally:
        host.run(f"rm -f {directory}/{token}.txt")


def test_plain_http_goes_to_https_where_the_site_has_it(host):
    """Where the platform's row serves the site over HTTPS, plain HTTP
    answers with a redirect to the same path there."""
    platform = platform_of(host)
    if platform.get("scheme") != "https":
        pytest.skip("not applicable here: the site has no HTTPS on this platform's hosts")
    status, headers = Site(host, host.check_output("mktemp -d"), scheme="http").headers("/notes/")
    assert status in (301, 302), (status, headers)
    assert headers["location"] == f"https://{platform['server_name']}/notes/", headers


def test_served_by_proves_the_mode(host, site):
    mode = mode_of(host)
    served = site.json("/served-by/")
    for key, value in MODES[mode]["served_by"].items():
        assert served[key] == value, (key, served)
    assert served["user"] == runs_as(mode, platform_of(host))
    for pattern in MODES[mode]["processes"]:
        assert running(host, pattern), pattern


def test_the_app_cannot_change_its_code_or_settings(host):
    """Least privilege: the user that runs the app writes its data and its
    uploads, and nothing of the code, virtualenvs, static files, entry
    points or settings."""
    platform = platform_of(host)
    mode = mode_of(host)
    runner = runs_as(mode, platform)
    if runner == platform["owner"]:
        pytest.skip(
            f"not applicable here: {runner} owns the code and runs the app in {mode} mode "
            "(a control panel account owns its home, and its CGI runs as it)"
        )
    root = platform["root"]
    as_runner = f"sudo -u {runner} --"
    assert host.run(f"{as_runner} test -w {root}").rc == 1, root
    for path in (f"{root}/releases", f"{root}/venvs", f"{root}/wsgi", f"{root}/bin", f"{root}/current/"):
        assert host.file(path).exists, path
        writable = host.run(f"{as_runner} find {path} -writable -print -quit").stdout.strip()
        assert writable == "", f"{runner} can write {writable}"
    for path in (f"{root}/env", f"{root}/env.next", f"{root}/secret_key"):
        assert host.run(f"{as_runner} test -w {path}").rc == 1, path
        assert host.run(f"{as_runner} test -r {path}").rc == 0, path
    for path in (f"{root}/data", platform["media"]):
        assert host.run(f"{as_runner} test -w {path}").rc == 0, path


WRITABLE = Path(__file__).with_name("writable.py")


def root_log_entries(host):
    """What the root_commands callback recorded for the host: one entry per
    task the scenario's plays ran as root (tests/molecule/callback_plugins)."""
    name = host.backend.get_hostname()
    with open(os.environ["ROOT_COMMANDS_LOG"], encoding="utf-8") as log:
        return [entry for entry in map(json.loads, log) if entry["host"] == name]


def root_commands(host):
    """The programs the scenario's plays ran as root on the host."""
    return {program for entry in root_log_entries(host) for program in entry["programs"]}


def tasks_that_ran(host, programs):
    """The tasks that ran `programs` as root, to say where to look."""
    ran = root_log_entries(host)
    return {program: sorted({entry["task"] for entry in ran if program in entry["programs"]}) for program in programs}


def test_nothing_root_loads_or_runs_can_be_changed_by_another_user(host):
    """Every file root's Apache has mapped (its modules, the libraries they
    link), and every program the deploy ran as root, with each directory on
    the way: none may be writable by the app, by a cPanel account or by
    anyone but root. Otherwise whoever takes over the app takes over root."""
    platform = platform_of(host)
    pid = host.check_output(f"systemctl show --property MainPID --value {platform['service']}").strip()
    maps = host.check_output(f"cat /proc/{pid}/maps").splitlines()
    loaded = {fields[5] for fields in map(str.split, maps) if len(fields) == 6 and fields[5].startswith("/")}
    assert any("mod_" in path for path in loaded), f"no module mapped in Apache's main process {pid}"
    ran = root_commands(host)
    if applies(platform, "root_commands"):
        assert ran, "the log has no program this host's plays ran as root"
    # Nothing Apache needs to start lies in a home directory either: an
    # account's removal (cPanel's removeacct deletes its home) never stops
    # the next start. Its configuration files, and what it has loaded.
    included = {line.strip() for line in host.check_output(f"{platform['ctl']} -t -D DUMP_INCLUDES").splitlines()}
    included = {word for line in included for word in line.split() if word.startswith("/")}
    in_homes = sorted(path for path in loaded | included if path.startswith("/home/"))
    assert not in_homes, f"Apache needs these to start, and they are in a home directory: {in_homes}"
    remote = "/root/writable-check"
    copy_scripts(host, remote, WRITABLE)
    names = " ".join(shlex.quote(path) for path in sorted(loaded | ran))
    unsafe = json.loads(host.check_output(f"python3 {remote}/writable.py {names}"))
    assert not unsafe, json.dumps({"unsafe": unsafe, "run as root by": tasks_that_ran(host, unsafe)}, indent=1)


def test_bin_manage_runs_the_live_manage_py_as_the_app(host):
    platform = platform_of(host)
    runner = runs_as(mode_of(host), platform)
    # Root runs it where root owns it. In an account's home the account can
    # change it: root switches to the app's user first.
    switch = "" if platform["owner"] == "root" else f"runuser -u {runner} -- "
    manage = f"{switch}{platform['root']}/bin/manage"
    who = host.run(f"{manage} shell -c 'import os, pwd; print(pwd.getpwuid(os.getuid()).pw_name, os.getcwd())'")
    assert who.rc == 0, who.stderr
    # Django's shell may first say what it imported.
    user, cwd = who.stdout.strip().splitlines()[-1].split()
    assert user == runner
    assert cwd == host.check_output(f"readlink -f {platform['root']}/current/app")
    plan = host.run(f"{manage} showmigrations notes")
    assert plan.rc == 0 and "[X] 0001_initial" in plan.stdout, plan.stdout + plan.stderr


def test_data_belongs_to_the_user_that_runs_the_app_and_settings_to_the_owner(host):
    platform = platform_of(host)
    runner = runs_as(mode_of(host), platform)
    root = platform["root"]
    for path in (f"{root}/secret_key", f"{root}/env"):
        secret = host.file(path)
        assert secret.mode == 0o640, path
        assert secret.user == platform["owner"], path
        assert host.run(f"sudo -u {runner} -- test -r {path}").rc == 0, path
    for path in (f"{root}/data", platform["media"]):
        assert host.file(path).user == runner, path
    for path in (f"{root}/data", platform["media"], f"{root}/secret_key", f"{root}/env"):
        # No ACL is left over from a switch: getfacl lists only the base entries.
        assert "user:" not in host.check_output(f"getfacl -p --omit-header {path} | grep -v '^user::' || true")


@pytest.mark.before_switch
def test_rejected_config_fails_the_play_and_keeps_every_site(whole_scenario):
    """Converge one container per platform and release again with a
    directive Apache rejects: the play must stop at configtest on each, the
    previous file must be back, and the site must still answer. The
    configtest-and-restore path is the same whatever the mode, so one host of
    each image proves it. Hosts whose platform writes no site file that a
    configtest checks are left out (their row says why)."""
    every = {name: node(name) for name in inventory_hosts()}
    one_per_image = {}
    for name, h in every.items():
        if not applies(platform_of(h), "rejected_config"):
            print(f"{name}: not applicable here: {platform_of(h)['not_applicable']['rejected_config']}")
            continue
        # The name's suffix after the mode says the image: d12, d13, cpsim.
        one_per_image.setdefault(name.rsplit("-", 1)[1], name)
    hosts = {name: every[name] for name in one_per_image.values()}
    before = {name: h.file(platform_of(h)["site_file"].format(name=APP)).content_string for name, h in hosts.items()}
    result = converge(",".join(hosts), '{"apache__site_extra_directives": ["NotAnApacheDirective on"]}')
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for name, h in hosts.items():
        assert re.search(rf"fatal: \[{re.escape(name)}\]", output), name
        assert h.file(platform_of(h)["site_file"].format(name=APP)).content_string == before[name]
        assert h.run(f"{platform_of(h)['ctl']} -t").rc == 0
        assert "Django sample app" in h.check_output(f"{curl_prefix(h, platform_of(h))}/")
    assert "Invalid command 'NotAnApacheDirective'" in output
    assert "previous file was restored" in output
