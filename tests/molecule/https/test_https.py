"""HTTPS with a certificate from a real ACME server (Pebble in the host),
obtained and renewed by mod_md through the apache role."""

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[3]
NAME = "https.vps.test"
ROOT = "/srv/sampleapp"
MD_STORE = "/var/lib/apache2/md"
PEBBLE_ROOT = "/run/pebble-root.pem"
RESOLVE = f"--resolve {NAME}:443:127.0.0.1"


def run(host, command):
    result = host.run(command)
    assert result.rc == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def pebble_root(host):
    """Pebble makes a new root at each start; its management port serves it."""
    run(host, f"curl -fsS --max-time 10 --cacert /etc/pebble/ca.pem -o {PEBBLE_ROOT} https://127.0.0.1:15000/roots/0")
    return PEBBLE_ROOT


def https(host, path, *args):
    command = f"curl -sS --max-time 30 {RESOLVE} --cacert {pebble_root(host)} {' '.join(args)} https://{NAME}{path}"
    return run(host, command)


def served_certificate(host):
    """The certificate Apache serves for NAME, verified against Pebble's root: serial and issuer."""
    command = (
        f"openssl s_client -connect 127.0.0.1:443 -servername {NAME} -CAfile {pebble_root(host)}"
        " -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial -issuer"
    )
    result = host.run(f"bash -o pipefail -c {shlex.quote(command)}")
    assert result.rc == 0, f"the served certificate does not verify against Pebble's root: {result.stderr}"
    fields = dict(line.split("=", 1) for line in result.stdout.splitlines())
    return fields["serial"], fields["issuer"]


def test_the_served_certificate_was_issued_by_pebble(host):
    serial, issuer = served_certificate(host)
    assert "Pebble Intermediate CA" in issuer
    # mod_md's own certificate for the name, not its temporary fallback.
    stored = run(host, f"openssl x509 -noout -serial -in {MD_STORE}/domains/{NAME}/pubcert.pem")
    assert stored.strip() == f"serial={serial}"


def test_plain_http_redirects_to_https(host):
    answer = run(
        host,
        f"curl -sS --max-time 30 -o /dev/null -w '%{{http_code}} %{{redirect_url}}'"
        f" -H 'Host: {NAME}' 'http://127.0.0.1/notes/?page=2'",
    )
    assert answer == f"301 https://{NAME}/notes/?page=2"


def test_acme_challenges_are_not_redirected(host):
    # mod_md answers (404 for an unknown token) instead of the redirect.
    status = run(
        host,
        f"curl -sS --max-time 30 -o /dev/null -w '%{{http_code}}' -H 'Host: {NAME}'"
        " http://127.0.0.1/.well-known/acme-challenge/unknown-token",
    )
    assert status == "404"


def test_the_app_knows_the_request_is_secure(host):
    served_by = json.loads(https(host, "/served-by/", "-f"))
    assert served_by["url_scheme"] == "https"
    assert served_by["is_secure"] is True
    assert served_by["wsgate_front_end"] == "relay"


def test_the_https_settings_pass_check_deploy(host):
    env = host.file(f"{ROOT}/env").content_string.splitlines()
    assert "DJANGO_SECURE_SSL=1" in env
    assert "DJANGO_SECURE_HSTS_SECONDS=0" in env
    result = host.run(
        f"cd {ROOT}/current/app && ../venv/bin/python {ROOT}/bin/djtool.py --env {ROOT}/env"
        f" --secret {ROOT}/secret_key check"
    )
    assert result.rc == 0, result.stdout + result.stderr


def headers_of(host, path):
    lines = https(host, path, "-f", "-o /dev/null", "-D -").lower().splitlines()
    return [tuple(part.strip() for part in line.split(":", 1)) for line in lines if ":" in line]


def test_security_headers_without_duplicates_and_no_hsts_by_default(host):
    for path in ("/", "/static/notes/style.css"):
        headers = headers_of(host, path)
        names = [name for name, _ in headers]
        for name, value in (
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "deny"),
            ("referrer-policy", "same-origin"),
        ):
            assert names.count(name) == 1, f"{path}: {name} {names.count(name)} times"
            assert (name, value) in headers, path
        assert "strict-transport-security" not in names, path


def test_tls_protocols_are_the_intermediate_profile(host):
    old = host.run(f"openssl s_client -connect 127.0.0.1:443 -servername {NAME} -tls1_1 </dev/null")
    assert old.rc != 0, "TLS 1.1 was accepted"
    modern = host.run(f"openssl s_client -connect 127.0.0.1:443 -servername {NAME} -tls1_2 </dev/null")
    assert modern.rc == 0, modern.stderr


def wait_for(what, predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"{what}: not within {seconds} s")


def test_a_renewal_goes_live(host):
    """A renewal window longer than the certificate's lifetime makes mod_md
    renew at once; the role's activation job then puts the renewed
    certificate live with a graceful reload."""
    before, _ = served_certificate(host)
    override = "/etc/apache2/conf-enabled/zzz-renew-now.conf"
    try:
        run(host, f"echo 'MDRenewWindow 3650d' > {override} && apache2ctl -t && systemctl reload apache2")
        wait_for(
            "mod_md staged a renewed certificate",
            lambda: host.file(f"{MD_STORE}/staging/{NAME}/pubcert.pem").exists,
            90,
        )
    finally:
        run(host, f"rm -f {override}")
    run(host, "systemctl start apache-md-activate.service")
    after = wait_for(
        "the renewed certificate is served",
        lambda: (lambda serial: serial if serial != before else None)(served_certificate(host)[0]),
        30,
    )
    assert not host.file(f"{MD_STORE}/staging/{NAME}").exists
    stored = run(host, f"openssl x509 -noout -serial -in {MD_STORE}/domains/{NAME}/pubcert.pem")
    assert stored.strip() == f"serial={after}"


def test_missing_certificate_files_are_refused_before_anything_changes(host):
    config = "/etc/apache2/conf-available/zz-tls.conf"
    before = host.file(config).sha256sum
    playbook = Path(__file__).with_name("refused_certificate.yml")
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            str(playbook),
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            "--limit",
            host.backend.get_hostname(),
        ],
        cwd=PROJECT,
        env={**os.environ, "ANSIBLE_ROLES_PATH": str(PROJECT / "roles"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output
    assert "apache__tls_certificate_file is /etc/ssl/missing-site.pem, which does not exist" in output, output
    assert not host.file("/etc/apache2/sites-available/refused.conf").exists
    assert host.file(config).sha256sum == before
