"""The cPanel EA4 SIMULATION's httpd.conf generator
(molecule/cpanel-sim/files/rebuildhttpdconf.py), without a container: it
runs on fixture userdata in a temporary directory that stands for /, with
the modules of each simulated profile (read from molecule/cpanel-sim/
prepare.yml), and this host's Apache (Debian's apache2-bin, with
libapache2-mpm-itk and apache2-suexec-custom) judges the result: `-t` as the
generator itself runs it, `-S` for which vhost answers which address, and
`-t -D DUMP_CONFIG` (mod_info, loaded on the command line only) for the
configuration as Apache reads it, includes inlined and <IfModule> decided.

Apache resolves the user and group names of User, Group, SuexecUserGroup and
AssignUserID while it reads them, so each run gets a user database of the
simulated server (nobody with group nobody, the accounts) bound over
/etc/passwd and /etc/group in a mount namespace of its own."""

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2]
SIM = PROJECT / "molecule" / "cpanel-sim"
GENERATOR = SIM / "files" / "rebuildhttpdconf.py"
APACHE = "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")
# Nothing is ever sent to it: a documentation address stands for the main IP.
MAIN_IP = "192.0.2.10"
# The generator names the server after the host it runs on.
HOSTNAME = socket.gethostname()
DCV_PATTERNS = (
    r"^/\.well-known/pki-validation/(?:\ Ballot169)?",
    r"^/\.well-known/cpanel-dcv/[0-9a-zA-Z_-]+$",
    r"^/\.well-known/pki-validation/[A-F0-9]{32}\.txt(?:\ Sectigo\ DCV)?$",
)
# The accounts of the fixture: `acme` may run CGI and has a PHP-FPM
# handler, `nocgi` may not run CGI; both have a certificate.
ACCOUNTS = {
    "acme": {"uid": 1001, "domain": "acme.test", "hascgi": 1, "php_fpm": 1},
    "nocgi": {"uid": 1002, "domain": "nocgi.test", "hascgi": 0, "php_fpm": 0},
}
PROFILES = ("itk", "suexec")


def simulation_settings():
    """The prepare play's vars: the modules and the profiles."""
    plays = yaml.safe_load((SIM / "prepare.yml").read_text())
    return next(play["vars"] for play in plays if "cpsim_profiles" in (play.get("vars") or {}))


def namespace_prefix():
    """unshare, so that bind mounts stay in the command's namespace."""
    if os.geteuid() == 0:
        return ["unshare", "--mount"]
    return ["unshare", "--user", "--map-root-user", "--mount"]


class Server:
    """A simulated cPanel server under `root`, which stands for /."""

    def __init__(self, root, profile, certificate):
        self.root = root
        self.profile = profile
        self.server_root = root / "etc/apache2"
        self.conf = self.server_root / "conf/httpd.conf"
        self.userdata = root / "var/cpanel/userdata"
        self.includes = self.server_root / "conf.d/userdata"
        self._lay_out(certificate)

    def path(self, absolute):
        return self.root / absolute.lstrip("/")

    def _lay_out(self, certificate):
        for directory in ("conf", "conf.modules.d", "conf.d/includes", "logs/domlogs"):
            (self.server_root / directory).mkdir(parents=True, exist_ok=True)
        (self.server_root / "modules").symlink_to(MODULES)
        (self.server_root / "conf/mime.types").write_text("text/html html\ntext/plain txt\n")
        (self.server_root / "conf.d/ea4_sim.conf").write_text("# stands for a package's conf.d file\n")
        settings = simulation_settings()
        for module in settings["cpsim_modules"] + settings["cpsim_profiles"][self.profile]["modules"]:
            so = module.get("so", f"modules/mod_{module['module']}.so")
            lines = [f"LoadModule {module['module']}_module {so}", *module.get("lines", [])]
            (self.server_root / "conf.modules.d" / f"{module['file']}.conf").write_text("\n".join(lines) + "\n")
        self.userdata.mkdir(parents=True)
        self.path("/var/cpanel/mainip").write_text(MAIN_IP)
        self.path("/var/www/html").mkdir(parents=True)
        self.path("/run/apache2").mkdir(parents=True)
        service = self.path("/var/cpanel/ssl/cpanel/mycpanel.pem")
        service.parent.mkdir(parents=True)
        service.write_text(certificate)
        users = ["root:x:0:0:root:/root:/bin/sh", "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"]
        groups = ["root:x:0:", "nobody:x:65534:"]
        for user, account in ACCOUNTS.items():
            users.append(f"{user}:x:{account['uid']}:{account['uid']}::/home/{user}:/bin/sh")
            groups.append(f"{user}:x:{account['uid']}:")
            self._account(user, account, certificate)
        self.passwd = self.root.parent / "passwd"
        self.group = self.root.parent / "group"
        self.passwd.write_text("\n".join(users) + "\n")
        self.group.write_text("\n".join(groups) + "\n")

    def _account(self, user, account, certificate):
        domain = account["domain"]
        docroot = self.path(f"/home/{user}/public_html")
        (docroot / "cgi-bin").mkdir(parents=True)
        combined = self.path(f"/var/cpanel/ssl/apache_tls/{domain}/combined")
        combined.parent.mkdir(parents=True)
        combined.write_text(certificate)
        vhost = {
            "documentroot": str(docroot),
            "group": user,
            "hascgi": account["hascgi"],
            "homedir": str(docroot.parent),
            "ip": MAIN_IP,
            "owner": "root",
            "port": 80,
            "serveradmin": f"webmaster@{domain}",
            "serveralias": f"www.{domain}",
            "servername": domain,
            "usecanonicalname": "Off",
            "user": user,
        }
        if account["php_fpm"]:
            vhost.update(php_fpm=1, php_fpm_socket=f"/run/php-fpm/{user}.sock")
        ssl = {**vhost, "port": 443, "sslcertificatefile": str(combined)}
        main = {"main_domain": domain, "sub_domains": [], "addon_domains": {}, "parked_domains": []}
        self.write_userdata(user, "main", main)
        self.write_userdata(user, domain, vhost)
        self.write_userdata(user, f"{domain}_SSL", ssl)

    def write_userdata(self, user, name, data):
        path = self.userdata / user / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data))

    def add_include(self, kind, user, domain, name, text):
        path = self.includes / kind / "2_4" / user / domain / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def _run(self, command, environment=None):
        script = 'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && shift 2 && exec "$@"'
        return subprocess.run(
            [*namespace_prefix(), "sh", "-c", script, "sh", str(self.passwd), str(self.group), *command],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **(environment or {})},
            timeout=60,
        )

    def rebuild(self, *args):
        environment = {"CPSIM_ROOT": str(self.root), "CPSIM_HTTPD": APACHE}
        return self._run([sys.executable, str(GENERATOR), *args], environment)

    def apache(self, *args):
        result = self._run([APACHE, "-d", str(self.server_root), "-f", str(self.conf), *args])
        assert result.returncode == 0, result.stderr + result.stdout
        return result.stdout

    def vhost_map(self):
        """`apache2 -S`: each address, with its vhosts' names, the default first."""
        addresses, current = {}, None
        for line in self.apache("-S").splitlines():
            single = re.match(r"^(\S+:\S+)\s+(?!is a NameVirtualHost)(\S+) \(", line)
            named = re.match(r"^(\S+:\S+)\s+is a NameVirtualHost", line)
            member = re.match(r"^\s+(?:default server|port \S+ namevhost) (\S+) \(", line)
            if named:
                current = addresses.setdefault(named.group(1), [])
            elif single:
                addresses[single.group(1)] = [single.group(2)]
                current = None
            elif member and current is not None and member.group(1) not in current:
                current.append(member.group(1))
        return addresses

    def dump(self):
        """The configuration as Apache reads it: the server-level lines and
        each <VirtualHost> as (address, ServerName, lines), comments and
        `# In file:` markers kept."""
        text = self.apache("-C", f"LoadModule info_module {MODULES}/mod_info.so", "-t", "-D", "DUMP_CONFIG")
        server, vhosts, current = [], [], None
        for raw in text.splitlines():
            line = raw.strip()
            if re.match(r"#\s+\d+:$", line) or not line:
                continue
            if line.startswith("<VirtualHost "):
                current = (line[len("<VirtualHost ") : -1], [])
            elif line == "</VirtualHost>":
                name = next(entry.split()[1] for entry in current[1] if entry.startswith("ServerName "))
                vhosts.append((current[0], name, current[1]))
                current = None
            elif current is not None:
                current[1].append(line)
            else:
                server.append(line)
        return server, vhosts


def vhost(vhosts, address, name):
    found = [lines for vhost_address, vhost_name, lines in vhosts if vhost_address == address and vhost_name == name]
    assert len(found) == 1, [(a, n) for a, n, _ in vhosts]
    return found[0]


def included(text):
    """The patterns of a configuration's Include lines, in order."""
    return re.findall(r'^\s*Include "([^"]+)"$', text, re.MULTILINE)


def index_of(lines, predicate, what):
    for position, line in enumerate(lines):
        if predicate(line):
            return position
    raise AssertionError(f"no {what} in {lines}")


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    """A self-signed key and certificate in one PEM, as cPanel's combined files."""
    directory = tmp_path_factory.mktemp("certificate")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-days", "2", "-subj", "/CN=acme.test", "-keyout", "key.pem", "-out", "crt.pem"),
        ],
        cwd=directory,
        capture_output=True,
        check=True,
    )
    return (directory / "key.pem").read_text() + (directory / "crt.pem").read_text()


@pytest.fixture(scope="session", autouse=True)
def host_apache():
    """This host's Apache and the modules of both profiles (make host-packages)."""
    missing = [path for path in (APACHE, MODULES / "mpm_itk.so", "/usr/lib/apache2/suexec") if not Path(path).exists()]
    assert not missing, (
        f"{missing} missing: the test needs apache2-bin, libapache2-mpm-itk and apache2-suexec-custom "
        "(HOST_PACKAGES_BARE in the Makefile)"
    )
    assert shutil.which("unshare") and shutil.which("openssl"), "unshare (util-linux) and openssl are needed"


@pytest.fixture(params=PROFILES)
def server(request, tmp_path, certificate):
    server = Server(tmp_path / "root", request.param, certificate)
    server.add_include("std", "acme", "acme.test", "app.conf", "Header set X-Cpsim-Include std\n")
    server.add_include("ssl", "acme", "acme.test", "app.conf", "Header set X-Cpsim-Include ssl\n")
    built = server.rebuild()
    assert built.returncode == 0, built.stderr
    return server


def test_account_vhosts_are_bound_to_the_userdata_ip(server):
    addresses = server.vhost_map()
    # The shared IP's own default vhost comes first, then the accounts'.
    assert addresses[f"{MAIN_IP}:80"][0] == HOSTNAME, addresses
    assert {"acme.test", "nocgi.test"} <= set(addresses[f"{MAIN_IP}:80"]), addresses
    assert {"acme.test", "nocgi.test"} <= set(addresses[f"{MAIN_IP}:443"]), addresses
    # No account's vhost answers any other address.
    for address, names in addresses.items():
        if not address.startswith(f"{MAIN_IP}:"):
            assert not {"acme.test", "nocgi.test"} & set(names), (address, names)


def test_127_0_0_1_is_answered_by_the_proxy_subdomains_vhost(server):
    addresses = server.vhost_map()
    assert addresses["127.0.0.1:80"][0] == "proxy-subdomains-vhost.localhost", addresses
    assert addresses["127.0.0.1:443"][0] == HOSTNAME, addresses
    # And every other address by the server's default vhost.
    assert addresses["*:*"] == [HOSTNAME], addresses


def test_ssl_vhost_has_the_certificate_and_the_ssl_includes(server):
    _, vhosts = server.dump()
    secure = vhost(vhosts, f"{MAIN_IP}:443", "acme.test")
    plain = vhost(vhosts, f"{MAIN_IP}:80", "acme.test")
    assert "SSLEngine on" in secure
    combined = server.path("/var/cpanel/ssl/apache_tls/acme.test/combined")
    assert f"SSLCertificateFile {combined}" in secure
    assert "Header set X-Cpsim-Include ssl" in secure and "Header set X-Cpsim-Include std" not in secure
    assert "Header set X-Cpsim-Include std" in plain and "Header set X-Cpsim-Include ssl" not in plain
    # What the template puts after the includes of an SSL vhost.
    include = secure.index("Header set X-Cpsim-Include ssl")
    proxy = index_of(secure, lambda line: line.startswith('ProxyPass "/___proxy_activesync"'), "ActiveSync proxy")
    assert include < proxy, secure


def test_dcv_paths_end_rewriting_before_the_includes(server):
    top, vhosts = server.dump()
    end_rule = top.index("RewriteRule ^ - [END]")
    conditions = [line for line in top[:end_rule] if line.startswith("RewriteCond %{REQUEST_URI}")]
    assert [line.split(None, 2)[2].removesuffix(" [OR]") for line in conditions] == list(DCV_PATTERNS)
    assert "RewriteEngine on" in top[:end_rule]
    for name in ("acme.test", "nocgi.test"):
        lines = vhost(vhosts, f"{MAIN_IP}:80", name)
        assert "RewriteOptions Inherit" in lines, lines
    plain = vhost(vhosts, f"{MAIN_IP}:80", "acme.test")
    assert plain.index("RewriteOptions Inherit") < plain.index("Header set X-Cpsim-Include std"), plain


def test_identity_block_switches_to_the_account_per_profile(server):
    _, vhosts = server.dump()
    expected = {"itk": "AssignUserID acme acme", "suexec": "SuexecUserGroup acme acme"}
    for address in (f"{MAIN_IP}:80", f"{MAIN_IP}:443"):
        lines = vhost(vhosts, address, "acme.test")
        identity = [line for line in lines if line.split()[0] in ("AssignUserID", "SuexecUserGroup", "RUidGid")]
        assert identity == [expected[server.profile]], (address, lines)
    modules = server.apache("-M")
    assert ("mpm_itk_module" in modules) == (server.profile == "itk"), modules
    assert ("suexec_module" in modules) == (server.profile == "suexec"), modules
    assert "mpm_prefork_module" in modules, modules
    # mod_fcgid conflicts with the default profile's switch; the suEXEC
    # profile has it.
    assert ("fcgid_module" in modules) == (server.profile == "suexec"), modules
    # All three switches are written, each under the template's conditions.
    text = server.conf.read_text()
    assert re.search(
        r"<IfModule suexec_module>\s*<IfModule !mod_ruid2\.c>\s*SuexecUserGroup acme acme\s*</IfModule>\s*</IfModule>"
        r"\s*<IfModule ruid2_module>\s*RMode config\s*RUidGid acme acme\s*</IfModule>"
        r"\s*<IfModule mpm_itk\.c>\s*AssignUserID acme acme\s*</IfModule>",
        text,
    ), text


def test_account_without_cgi_has_it_off(server):
    top, vhosts = server.dump()
    # Server-wide, a .cgi is a CGI program wherever ExecCGI is on.
    assert "AddHandler cgi-script .cgi .pl .plx .ppl .perl" in top
    for address in (f"{MAIN_IP}:80", f"{MAIN_IP}:443"):
        without = vhost(vhosts, address, "nocgi.test")
        assert "Options -ExecCGI -Includes" in without, without
        assert "RemoveHandler cgi-script .cgi .pl .plx .ppl .perl" in without, without
        assert not [line for line in without if line.startswith("ScriptAlias ")], without
        with_cgi = vhost(vhosts, address, "acme.test")
        docroot = server.path("/home/acme/public_html")
        assert f"ScriptAlias /cgi-bin/ {docroot}/cgi-bin/" in with_cgi, with_cgi
        assert not [line for line in with_cgi if line.startswith(("RemoveHandler", "Options"))], with_cgi


def test_php_fpm_handler_follows_the_includes(server):
    _, vhosts = server.dump()
    for address, marker in ((f"{MAIN_IP}:80", "std"), (f"{MAIN_IP}:443", "ssl")):
        lines = vhost(vhosts, address, "acme.test")
        handler = index_of(lines, lambda line: line.startswith("<FilesMatch"), "php-fpm FilesMatch")
        assert lines.index(f"Header set X-Cpsim-Include {marker}") < handler, lines
        assert lines[handler + 1] == "SetHandler proxy:unix:/run/php-fpm/acme.sock|fcgi://acme.test", lines
    assert not [line for line in vhost(vhosts, f"{MAIN_IP}:80", "nocgi.test") if line.startswith("<FilesMatch")]


def test_includes_are_the_ones_present_at_the_rebuild(server):
    """An alias's include directory comes before the domain's; a file added
    after a rebuild is read only after the next one."""
    alias = server.add_include("std", "acme", "www.acme.test", "alias.conf", "Header set X-Cpsim-Alias yes\n")
    later = server.add_include("std", "nocgi", "nocgi.test", "later.conf", "Header set X-Cpsim-Later yes\n")
    assert f"{later.parent}/*.conf" not in included(server.conf.read_text())
    assert server.rebuild().returncode == 0
    patterns = included(server.conf.read_text())
    assert f"{later.parent}/*.conf" in patterns
    domain = server.includes / "std/2_4/acme/acme.test"
    assert patterns.index(f"{alias.parent}/*.conf") < patterns.index(f"{domain}/*.conf")
    _, vhosts = server.dump()
    assert "Header set X-Cpsim-Later yes" in vhost(vhosts, f"{MAIN_IP}:80", "nocgi.test")
    assert "Header set X-Cpsim-Later yes" not in vhost(vhosts, f"{MAIN_IP}:443", "nocgi.test")


def test_failed_rebuild_keeps_the_previous_file(server):
    before = server.conf.read_bytes()
    server.add_include("std", "acme", "acme.test", "broken.conf", "Options +NoSuchOption\n")
    failed = server.rebuild()
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Illegal option NoSuchOption" in failed.stderr, failed.stderr
    assert f"{server.conf} was left as it was" in failed.stderr, failed.stderr
    assert server.conf.read_bytes() == before
    assert sorted(path.name for path in server.conf.parent.iterdir()) == ["httpd.conf", "mime.types"]


def test_print_shows_what_a_rebuild_writes(server):
    printed = server.rebuild("--print")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == server.conf.read_text()
    assert "DO NOT EDIT. AUTOMATICALLY GENERATED" in printed.stdout
    assert "SIMULATION" in printed.stdout


def test_userdata_without_an_ip_is_refused_by_name(server):
    before = server.conf.read_bytes()
    data = yaml.safe_load((server.userdata / "nocgi/nocgi.test").read_text())
    del data["ip"]
    server.write_userdata("nocgi", "nocgi.test", data)
    failed = server.rebuild()
    assert failed.returncode == 1
    assert f"{server.userdata / 'nocgi/nocgi.test'}: missing ip" in failed.stderr, failed.stderr
    assert server.conf.read_bytes() == before
