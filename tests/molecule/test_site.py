"""Verify a converged VPS: Apache, the sample app through Apache, and which
deployment mode served it. Shared by every Molecule scenario; the scenario
sets EXPECTED_MODE."""

import hashlib
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

APP = "sampleapp"
APP_USER = "sampleapp"
APACHE_USER = "www-data"
SITE_CONF = f"/etc/apache2/sites-available/{APP}.conf"
PROJECT = Path(__file__).resolve().parents[2]


def test_apache_is_running_and_enabled(host):
    service = host.service("apache2")
    assert service.is_running
    assert service.is_enabled


def test_configtest_passes(host):
    result = host.run("apache2ctl -t")
    assert result.rc == 0, result.stderr
    assert "Syntax OK" in result.stderr


def test_modules_loaded(host):
    modules = host.check_output("apache2ctl -M")
    assert "wsgi_module" in modules
    assert "mpm_event_module" in modules


def test_one_vhost_file_for_the_site(host):
    vhosts = host.check_output("apache2ctl -S")
    assert "vps.test" in vhosts
    assert f"sites-enabled/{APP}.conf" in vhosts
    assert not host.file("/etc/apache2/sites-enabled/000-default.conf").exists


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
    # Django's SecurityMiddleware marks every response it makes; a file
    # Apache serves from STATIC_ROOT carries none of its headers.
    assert "x-content-type-options" not in headers
    _, page_headers = site.headers("/")
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


def test_upload_is_stored_and_served_back(host, site):
    payload = uuid.uuid4().hex * 1000
    upload = host.check_output("mktemp")
    host.check_output(f"printf %s {payload} > {upload}")
    token = site.csrf_token("/upload/")
    page = site.curl("/upload/", "-F", f"csrfmiddlewaretoken={token}", "-F", f"file=@{upload};filename=sample.txt")
    digest = hashlib.sha256(payload.encode()).hexdigest()
    assert re.search(rf'id="upload-sha256"[^>]*>\s*{digest}', page), page
    assert re.search(rf'id="upload-size"[^>]*>\s*{len(payload)}\b', page), page
    name = re.search(r'id="upload-name"[^>]*>\s*([^<\s]+)', page).group(1)
    assert site.get(f"/media/{name}") == payload


def test_served_by_reports_the_expected_mode(site, expected_mode):
    served = site.json("/served-by/")
    assert served["parent_process_name"] == "apache2"
    if expected_mode == "embedded":
        assert served["gateway_interface"] == "CGI/1.1"
        assert served["mod_wsgi_process_group"] == ""
        assert served["process_name"] == "apache2"
        assert served["process_title"].endswith("apache2")
        assert served["user"] == APACHE_USER
    else:
        assert served["mod_wsgi_process_group"] == APP
        # display-name=%{GROUP} renames the daemon process's argv[0].
        assert served["process_title"] == f"(wsgi:{APP})"
        assert served["user"] == APP_USER
        assert served["wsgi_multithread"] is True
        # GATEWAY_INTERFACE is not checked here: the pip-built mod_wsgi 6.x
        # of this scenario leaves it out of daemon requests (Debian's 5.0.2
        # passes it).


def test_code_is_not_writable_by_apache(host):
    for path in (f"/srv/{APP}/app/manage.py", f"/srv/{APP}/venv/bin/python", f"/srv/{APP}/wsgi/django.wsgi"):
        assert host.run(f"sudo -u {APACHE_USER} test -w {path}").rc != 0, path


def test_secrets_are_private(host, expected_mode):
    owner = APACHE_USER if expected_mode == "embedded" else APP_USER
    for path in (f"/srv/{APP}/secret_key", f"/srv/{APP}/env"):
        secret = host.file(path)
        assert secret.mode == 0o600, path
        assert secret.user == owner, path


def test_rejected_config_fails_the_play_and_keeps_the_site(host, site):
    """Converge again with a directive Apache rejects: the play must stop at
    configtest, the previous file must be back, and the site must answer."""
    before = host.file(SITE_CONF).content_string
    name = host.backend.get_hostname()
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "site.yml",
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            "--limit",
            name,
            "-e",
            '{"apache__site_extra_directives": ["NotAnApacheDirective on"]}',
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Invalid command 'NotAnApacheDirective'" in output
    assert "previous file was restored" in output
    assert host.file(SITE_CONF).content_string == before
    assert host.run("apache2ctl -t").rc == 0
    assert "Django sample app" in site.get("/")
