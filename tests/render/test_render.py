"""The app's Apache configuration for Debian 12, EL7, EL9 and cPanel EA4,
rendered by the roles' own entry points and checked by a real Apache.

One podman container per platform and mode (localhost/vps-render:12, built
by scripts/tool-image.sh render), laid out like the platform
(tests/render/layouts), runs tests/render/render.yml in a single
ansible-playbook run. The apache role configtests every file it writes with
the container's Apache behind the platform's apachectl. A few more hosts
render a site with a line Apache rejects, to show that the harness fails.
The rendered configuration is copied to .cache/render/<platform>/<mode>/.
"""

import io
import json
import re
import shutil
import socket
import subprocess
import tarfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ARTEFACTS = ROOT / ".cache" / "render"
BASE_IMAGE = "localhost/vps-debian:12"
IMAGE = "localhost/vps-render:12"
PLATFORMS = list(yaml.safe_load((HERE / "platforms.yml").read_text())["render_platforms"])
MODES = list(yaml.safe_load((ROOT / "playbooks" / "vars" / "modes.yml").read_text())["site__modes"])
WSGI_MODES = ["embedded", "daemon"]
# A site line Apache rejects: the play must fail and leave no file behind.
REJECTED_LINE = "Options +NoSuchOption"
REJECTED = {"debian12": "fastcgi", "el7": "fastcgi", "cpanel": "daemon"}

# One Ed25519 host key: ssh-keygen -A also makes an RSA key, which took long
# enough on a saturated test machine to leave sshd unready past a deadline.
SSHD = (
    "ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && mkdir -p /run/sshd"
    " && exec /usr/sbin/sshd -D -e -h /etc/ssh/ssh_host_ed25519_key"
)
# How long a started container may take to answer SSH: bounded, and generous
# enough for a machine that runs every suite at once.
SSH_PATIENCE = 120
AUTHORIZE = "mkdir -p -m 0700 /root/.ssh && cat > /root/.ssh/authorized_keys && chmod 0600 /root/.ssh/authorized_keys"

# Where each platform's Apache reads its configuration, and its apachectl.
CONFIG_ROOT = {"debian12": "etc/apache2", "el7": "etc/httpd", "el9": "etc/httpd", "cpanel": "etc/apache2"}
CTL = {
    "debian12": "apache2ctl",
    "el7": "/usr/sbin/apachectl",
    "el9": "/usr/sbin/apachectl",
    "cpanel": "/usr/sbin/apachectl",
}
CPANEL_STD = "etc/apache2/conf.d/userdata/std/2_4/acme/acme.test/sampleapp.conf"
CPANEL_SSL = "etc/apache2/conf.d/userdata/ssl/2_4/acme/acme.test/sampleapp.conf"
SITE_FILE = {
    "debian12": "etc/apache2/sites-available/sampleapp.conf",
    "el7": "etc/httpd/conf.d/sampleapp.conf",
    "el9": "etc/httpd/conf.d/sampleapp.conf",
    "cpanel": CPANEL_STD,
}
MOD_WSGI_SNIPPET = {
    "debian12": "etc/apache2/conf-available/mod_wsgi.conf",
    "el7": "etc/httpd/conf.d/mod_wsgi.conf",
    "el9": "etc/httpd/conf.d/mod_wsgi.conf",
    "cpanel": "etc/apache2/conf.d/mod_wsgi.conf",
}
APP_ROOT = {
    "debian12": "/srv/sampleapp",
    "el7": "/srv/sampleapp",
    "el9": "/srv/sampleapp",
    "cpanel": "/home/acme/sampleapp",
}
# What in a rendered line uses each option of __apache__since.options.
OPTION_USES = {
    "proxy_unix_socket": re.compile(r"^\s*ProxyPass\s.*\bunix:", re.MULTILINE),
    "proxy_enablereuse": re.compile(r"\benablereuse="),
    "cgi_pass_auth": re.compile(r"^\s*CGIPassAuth\b", re.MULTILINE),
    "header_expr": re.compile(r"^\s*Header\b.*\"expr=", re.MULTILINE),
    "ssl_session_tickets": re.compile(r"^\s*SSLSessionTickets\b", re.MULTILINE),
    # A vhost with SSLCertificateFile and no SSLCertificateChainFile.
    "ssl_chain_in_certificate": re.compile(r"^\s*SSLCertificateFile\b(?![\s\S]*SSLCertificateChainFile)", re.MULTILINE),
    "md": re.compile(r"^\s*(MDomain|MDStoreDir|MDCertificateAuthority)\b", re.MULTILINE),
    "md_contact_email": re.compile(r"^\s*MDContactEmail\b", re.MULTILINE),
    "md_stapling": re.compile(r"^\s*MDStapling\b", re.MULTILINE),
}
MANAGED = re.compile(r"^# (Ansible managed|Managed by Ansible)", re.MULTILINE)


def _podman_env():
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: run `make host-packages`")
    dump = subprocess.run(
        ["bash", "-c", "source scripts/env.sh >/dev/null && env -0"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return dict(line.split("=", 1) for line in dump.split("\0") if "=" in line)


def _podman(env, *args, check=True, stdin=None, text=True):
    result = subprocess.run(["podman", *args], env=env, input=stdin, capture_output=True, text=text, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} failed: {result.stderr}")
    return result


def _images(env):
    if _podman(env, "image", "exists", BASE_IMAGE, check=False).returncode != 0:
        subprocess.run(["scripts/build-image.sh", "12"], cwd=ROOT, env=env, check=True)
    subprocess.run(["scripts/tool-image.sh", "render"], cwd=ROOT, env=env, check=True)


class Host:
    def __init__(self, platform, mode, rejected=False, live="", tls=False):
        self.platform, self.mode, self.rejected, self.live, self.tls = platform, mode, rejected, live, tls
        variant = "rejected" if rejected else f"{mode}-from-{live}" if live else f"{mode}-tls" if tls else mode
        self.name = f"render-{platform}-{variant}"
        self.artefacts = ARTEFACTS / platform / variant

    def inventory(self, address, key):
        host = {
            "ansible_host": address,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": key,
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "ansible_python_interpreter": "/usr/bin/python3",
            "render_platform": self.platform,
            "wsgi_deployment_mode": self.mode,
        }
        if self.rejected:
            host["apache__site_extra_directives"] = [REJECTED_LINE]
        if self.live:
            host["render_live_mode"] = self.live
        if self.tls:
            host["apache__tls_enabled"] = True
        return host


# A site leaving embedded mode for daemon mode, before its new site is written.
LEAVING_EMBEDDED = ["debian12", "el9"]
HOSTS = (
    [Host(platform, mode) for platform in PLATFORMS for mode in MODES]
    + [Host(platform, mode, rejected=True) for platform, mode in REJECTED.items()]
    + [Host(platform, "daemon", live="embedded") for platform in LEAVING_EMBEDDED]
    + [Host(platform, "daemon", tls=True) for platform in PLATFORMS]
)


def _lay_out(env, host, container):
    """Start the container with sshd (Ansible's transport: one SSH session
    per task, where `podman exec` costs three) and lay it out like its
    platform. Returns its address."""
    _podman(env, "run", "-d", "--name", container, "--label", "org.vps.render=1", IMAGE, "sh", "-c", SSHD)
    _podman(env, "exec", "-i", container, "sh", "-c", AUTHORIZE, stdin=Path(env["VPS_SSH_KEY"] + ".pub").read_text())
    _podman(env, "cp", str(HERE / "layouts"), f"{container}:/tmp/render-layouts")
    # As in the scenarios' containers: module runs keep their bytecode.
    _podman(env, "cp", f"{ROOT / 'tests' / 'container_python'}/.", f"{container}:/usr/lib/python3/dist-packages/")
    if host.platform == "cpanel":
        cpsim = "/tmp/render-layouts/cpanel/cpsim"
        _podman(env, "exec", container, "mkdir", "-p", cpsim)
        _podman(env, "cp", str(ROOT / "molecule" / "cpanel-sim" / "files") + "/.", f"{container}:{cpsim}/")
        _podman(env, "cp", str(ROOT / "molecule" / "cpanel-sim" / "prepare.yml"), f"{container}:{cpsim}/prepare.yml")
    setup_sh = f"/tmp/render-layouts/{host.platform}/setup.sh"
    setup = _podman(env, "exec", container, "sh", setup_sh, host.mode, check=False)
    assert setup.returncode == 0, f"{host.name}: the layout failed:\n{setup.stdout}{setup.stderr}"
    address = _podman(env, "inspect", "--format", "{{.NetworkSettings.IPAddress}}", container).stdout.strip()
    deadline = time.monotonic() + SSH_PATIENCE
    while True:
        try:
            socket.create_connection((address, 22), timeout=2).close()
            return address
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _collect(env, host, container):
    """apachectl -t with the rendered files in place, and a copy of them."""
    test = _podman(env, "exec", container, CTL[host.platform], "-t", check=False)
    shutil.rmtree(host.artefacts, ignore_errors=True)
    host.artefacts.mkdir(parents=True)
    paths = [CONFIG_ROOT[host.platform]]
    archive = _podman(env, "exec", container, "tar", "-C", "/", "-cf", "-", *paths, text=False).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(host.artefacts, filter="tar")
    return {"configtest_rc": test.returncode, "configtest": test.stdout + test.stderr}


def _recap(output):
    return {
        host: {"ok": int(ok), "failed": int(failed), "unreachable": int(unreachable)}
        for host, ok, unreachable, failed in re.findall(
            r"^(\S+)\s+: ok=(\d+)\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)", output, re.MULTILINE
        )
    }


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):
    """Run the render once; return the recap, the output and, per host, the
    configtest result (files under .cache/render)."""
    env = _podman_env()
    _images(env)
    run_id = uuid.uuid4().hex[:6]
    containers = {host.name: f"{host.name}-{run_id}" for host in HOSTS}
    started = []
    try:
        started.extend(containers.values())
        with ThreadPoolExecutor(max_workers=4) as pool:
            laid_out = pool.map(lambda host: _lay_out(env, host, containers[host.name]), HOSTS)
            addresses = dict(zip(containers, laid_out, strict=True))
        work = tmp_path_factory.mktemp("render")
        inventory = work / "hosts.json"
        hosts = {host.name: host.inventory(addresses[host.name], env["VPS_SSH_KEY"]) for host in HOSTS}
        inventory.write_text(json.dumps({"all": {"children": {"render": {"hosts": hosts}}}}))
        began = time.monotonic()
        result = subprocess.run(
            [
                str(ROOT / ".venv" / "bin" / "ansible-playbook"),
                str(HERE / "render.yml"),
                "-i",
                str(inventory),
                "--forks",
                str(len(HOSTS)),
                "-e",
                "__apache__restart_command=/bin/true",
            ],
            cwd=ROOT,
            env={
                **env,
                "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
                # This run's own SSH masters: an address can come back in
                # the next run, in another container.
                "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "cp"),
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
            },
            capture_output=True,
            text=True,
            check=False,
            timeout=1200,
        )
        output = result.stdout + result.stderr
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        (ARTEFACTS / "ansible.log").write_text(f"{output}\n(ansible-playbook: {time.monotonic() - began:.0f}s)\n")
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = pool.map(lambda host: _collect(env, host, containers[host.name]), HOSTS)
            checks = dict(zip((host.name for host in HOSTS), results, strict=True))
    finally:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda container: _podman(env, "rm", "-f", "-t", "0", container, check=False), started))
    return {"recap": _recap(output), "output": output, "checks": checks}


def _failure(rendered, host):
    """The play's output about one host."""
    lines = [line for line in rendered["output"].splitlines() if host.name in line]
    return "\n".join(lines[-20:]) or rendered["output"][-6000:]


def _host(platform, mode):
    plain = (h for h in HOSTS if not h.rejected and not h.live and not h.tls)
    return next(host for host in plain if (host.platform, host.mode) == (platform, mode))


def _read(host, path):
    return (host.artefacts / path).read_text()


def _managed_files(host):
    """The configuration files the roles wrote (they carry the managed marker)."""
    root = host.artefacts / CONFIG_ROOT[host.platform]
    return {
        path.relative_to(host.artefacts).as_posix(): path.read_text()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink() and MANAGED.search(path.read_text(errors="replace"))
    }


def _directives(text):
    """The directive of every line: its first word, a section's tag name;
    not comments, closing tags or the continuation of a previous line."""
    names, continued = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if not continued and stripped and not stripped.startswith(("#", "</")):
            names.append(stripped.split()[0].lstrip("<").rstrip(">"))
        continued = stripped.endswith("\\")
    return names


def _version(text):
    return tuple(int(part) for part in str(text).split("."))


def _since():
    return yaml.safe_load((ROOT / "roles" / "apache" / "vars" / "main.yml").read_text())["__apache__since"]


PAIRS = [(platform, mode) for platform in PLATFORMS for mode in MODES]


@pytest.mark.parametrize(("platform", "mode"), PAIRS, ids=[f"{p}-{m}" for p, m in PAIRS])
def test_the_roles_render_a_configuration_apache_accepts(rendered, platform, mode):
    host = _host(platform, mode)
    recap = rendered["recap"].get(host.name, {})
    assert recap.get("failed") == 0 and recap.get("unreachable") == 0, _failure(rendered, host)
    check = rendered["checks"][host.name]
    assert check["configtest_rc"] == 0, check["configtest"]
    site = _read(host, SITE_FILE[platform])
    assert f"{APP_ROOT[platform]}/current/static" in site and f"{APP_ROOT[platform]}/media" in site, site
    if platform == "debian12":
        link = host.artefacts / "etc/apache2/sites-enabled/sampleapp.conf"
        assert link.is_symlink() and Path(link.readlink()).as_posix() == "/" + SITE_FILE[platform]
    if platform == "cpanel":
        ssl = _read(host, CPANEL_SSL)
        assert "WSGIDaemonProcess" not in ssl, "the daemon group is defined once, in the std vhost"
        httpd_conf = _read(host, "etc/apache2/conf/httpd.conf")
        # cPanel binds the account's vhosts to its address (the userdata's).
        for port, variant in ((80, "std"), (443, "ssl")):
            bound = rf"<VirtualHost 192\.0\.2\.10:{port}>\n\s+ServerName acme\.test\n.*?</VirtualHost>"
            vhost = re.search(bound, httpd_conf, re.DOTALL)
            assert vhost, httpd_conf
            include = f'Include "/etc/apache2/conf.d/userdata/{variant}/2_4/acme/acme.test/*.conf"'
            assert include in vhost.group(0), vhost.group(0)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_directive_the_roles_write_is_in_the_table(rendered, platform):
    table = _since()["directives"]
    for mode in MODES:
        host = _host(platform, mode)
        for path, text in _managed_files(host).items():
            unknown = set(_directives(text)) - set(table)
            assert not unknown, f"{platform}/{mode}/{path}: {sorted(unknown)} missing from __apache__since.directives"


def test_el7_uses_nothing_newer_than_httpd_2_4_6(rendered):
    since, el7 = _since(), (2, 4, 6)
    assert set(OPTION_USES) == set(since["options"]), "teach OPTION_USES how each option of the table shows"
    seen = set()
    for mode in MODES:
        host = _host("el7", mode)
        files = _managed_files(host)
        assert SITE_FILE["el7"] in files, sorted(files)
        for path, text in files.items():
            for directive in _directives(text):
                seen.add(directive)
                assert _version(since["directives"][directive]) <= el7, f"el7/{mode}/{path}: {directive}"
            for option, use in OPTION_USES.items():
                if use.search(text):
                    assert _version(since["options"][option]) <= el7, f"el7/{mode}/{path}: {option}"
    assert {"WSGIDaemonProcess", "ProxyPass", "FcgidMaxRequestLen", "ScriptAlias", "LoadModule"} <= seen


def test_el7_fastcgi_falls_back_to_tcp_and_setenvif(rendered):
    site = _read(_host("el7", "fastcgi"), SITE_FILE["el7"])
    assert re.search(r'ProxyPass "/" "fcgi://127\.0\.0\.1:\d+/"', site), site
    assert "unix:" not in site and "enablereuse" not in site and "CGIPassAuth" not in site, site
    assert 'SetEnvIf Authorization "(.+)" HTTP_AUTHORIZATION=$1' in site, site
    for mode in ["cgi", "relay"]:
        site = _read(_host("el7", mode), SITE_FILE["el7"])
        assert "CGIPassAuth" not in site and "SetEnvIf Authorization" in site, site


@pytest.mark.parametrize("platform", ["debian12", "el9", "cpanel"])
def test_newer_httpd_gets_unix_sockets_reuse_and_cgipassauth(rendered, platform):
    site = _read(_host(platform, "fastcgi"), SITE_FILE[platform])
    assert re.search(r'ProxyPass "/" "unix:/run/wsgate/sampleapp\.sock\|fcgi://localhost/" enablereuse=on', site), site
    assert "CGIPassAuth On" in site and "SetEnvIf Authorization" not in site, site
    assert "CGIPassAuth On" in _read(_host(platform, "cgi"), SITE_FILE[platform])


@pytest.mark.parametrize("platform", PLATFORMS)
def test_mod_wsgi_server_snippet_and_module(rendered, platform):
    for mode in WSGI_MODES:
        host = _host(platform, mode)
        text = _read(host, MOD_WSGI_SNIPPET[platform])
        assert ("WSGIRestrictEmbedded Off" in text) == (mode == "embedded"), text
        prefix = {"debian12": None, "el7": "run/wsgi", "el9": "run/wsgi", "cpanel": "/var/run/wsgi"}[platform]
        assert ("WSGISocketPrefix" in text) == (prefix is not None), text
        assert prefix is None or f"WSGISocketPrefix {prefix}\n" in text, text
    daemon = _host(platform, "daemon")
    if platform == "cpanel":
        load = _read(daemon, "etc/apache2/conf.modules.d/99-ansible-wsgi_venv.conf")
        assert 'LoadModule wsgi_module "/usr/lib/apache2/modules/mod_wsgi.so"' in load, load
    if platform == "debian12":
        assert (daemon.artefacts / "etc/apache2/mods-enabled/wsgi.load").is_symlink()


def _tls_protocols_since():
    apache_vars = yaml.safe_load((ROOT / "roles" / "apache" / "vars" / "main.yml").read_text())
    return apache_vars["__apache__tls_protocols_since"]


# What each platform's Apache and its mod_ssl's OpenSSL know (platforms.yml).
TLS_PROTOCOLS = {
    "debian12": ["TLSv1.2", "TLSv1.3"],
    "el7": ["TLSv1.2"],
    "el9": ["TLSv1.2", "TLSv1.3"],
    "cpanel": ["TLSv1.2", "TLSv1.3"],
}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_https_renders_with_only_the_protocols_the_platform_knows(rendered, platform):
    """A site with HTTPS, per platform: Apache accepts it, and SSLProtocol
    names only what the platform's httpd and OpenSSL know, by the value
    table; CentOS 7's httpd 2.4.6 with OpenSSL 1.0.2 gets no TLSv1.3."""
    host = next(h for h in HOSTS if h.platform == platform and h.tls)
    recap = rendered["recap"].get(host.name, {})
    assert recap.get("failed") == 0 and recap.get("unreachable") == 0, _failure(rendered, host)
    check = rendered["checks"][host.name]
    assert check["configtest_rc"] == 0, check["configtest"]
    data = yaml.safe_load((HERE / "platforms.yml").read_text())["render_platforms"][platform]
    files = _managed_files(host)
    protocols = [
        line.split()[1:] for text in files.values() for line in text.splitlines() if line.startswith("SSLProtocol ")
    ]
    if platform == "cpanel":
        # AutoSSL's vhost carries cPanel's own TLS settings; the role adds
        # only its include there.
        assert protocols == [], files
        ssl = _read(host, CPANEL_SSL)
        assert 'Alias "/static/"' in ssl, ssl
        return
    assert len(protocols) == 1, files
    assert protocols[0][0] == "-all", protocols
    enabled = [word.lstrip("+") for word in protocols[0][1:]]
    assert enabled == TLS_PROTOCOLS[platform], protocols
    # Where the render names the platform's versions, the table agrees.
    table = _tls_protocols_since()
    for protocol in enabled:
        if data["apache_version"]:
            assert _version(table[protocol]["httpd"]) <= _version(data["apache_version"]), protocol
        if data["openssl"]:
            assert _version(table[protocol]["openssl"]) <= _version(data["openssl"]), protocol
    site = _read(host, SITE_FILE[platform])
    assert "SSLEngine on" in site, site


@pytest.mark.parametrize("platform", LEAVING_EMBEDDED)
def test_a_site_leaving_embedded_mode_keeps_it_allowed_until_retire(rendered, platform):
    """Apache answers 500 to an embedded request once WSGIRestrictEmbedded is
    On; the site still serves embedded until its daemon site is written."""
    leaving = next(host for host in HOSTS if (host.platform, host.live) == (platform, "embedded"))
    snippet = MOD_WSGI_SNIPPET[platform]
    assert "WSGIRestrictEmbedded Off" in _read(leaving, snippet)
    assert "WSGIRestrictEmbedded On" in _read(_host(platform, "daemon"), snippet)


def test_the_app_runs_as_the_mode_table_says(rendered):
    expected = {
        ("el7", "daemon"): "user=sampleapp group=sampleapp",
        ("el9", "daemon"): "user=sampleapp group=sampleapp",
        ("debian12", "daemon"): "user=sampleapp group=sampleapp",
        ("cpanel", "daemon"): "user=acme group=acme",
    }
    for (platform, mode), owner in expected.items():
        assert owner in _read(_host(platform, mode), SITE_FILE[platform])


@pytest.mark.parametrize(("platform", "mode"), list(REJECTED.items()))
def test_a_line_apache_rejects_fails_the_play_and_leaves_no_file(rendered, platform, mode):
    host = next(h for h in HOSTS if h.platform == platform and h.rejected)
    assert rendered["recap"][host.name]["failed"] == 1, rendered["output"][-6000:]
    # The last failure: the configtest task's is rescued, the role then fails.
    failures = re.findall(rf"^fatal: \[{re.escape(host.name)}\]: FAILED! => (.*)$", rendered["output"], re.MULTILINE)
    assert failures, _failure(rendered, host)
    message = json.loads(failures[-1])["msg"]
    assert "Apache configtest rejected" in message and "NoSuchOption" in message, message
    assert not (host.artefacts / SITE_FILE[platform]).exists()
    if platform == "debian12":
        assert not (host.artefacts / "etc/apache2/sites-enabled/sampleapp.conf").is_symlink()
    if platform == "cpanel":
        assert not (host.artefacts / CPANEL_SSL).exists()
        # The rebuild leaves the include as a comment when its directory has no file.
        active = re.findall(r'^\s*Include\s+"([^"]+)"', _read(host, "etc/apache2/conf/httpd.conf"), re.MULTILINE)
        assert not [path for path in active if "userdata/std/2_4/acme/acme.test" in path], active
    check = rendered["checks"][host.name]
    assert check["configtest_rc"] == 0, check["configtest"]


def test_the_app_has_every_key_the_django_role_publishes():
    def keys(tasks):
        publish = next(task for task in tasks if "django__app" in (task.get("ansible.builtin.set_fact") or {}))
        return set(publish["ansible.builtin.set_fact"]["django__app"])

    role = yaml.safe_load((ROOT / "roles" / "django" / "tasks" / "main.yml").read_text())
    render = yaml.safe_load((HERE / "render.yml").read_text())[0]["tasks"]
    assert keys(render) == keys(role)


def test_the_render_and_the_deploy_wire_the_roles_from_one_file():
    wired = yaml.safe_load((ROOT / "playbooks" / "vars" / "modes.yml").read_text())["site__wired_variables"]
    wiring = yaml.safe_load((ROOT / "playbooks" / "vars" / "wiring.yml").read_text())
    assert set(wired) <= set(wiring)
    render = yaml.safe_load((HERE / "render.yml").read_text())[0]
    serve = yaml.safe_load((ROOT / "playbooks" / "serve.yml").read_text())[0]
    for play, wiring_path in ((render, "../../playbooks/vars/wiring.yml"), (serve, "vars/wiring.yml")):
        assert wiring_path in play["vars_files"], play["name"]
        assert not set(wiring) & set(play["vars"]), f"{play['name']} sets what vars/wiring.yml decides"
