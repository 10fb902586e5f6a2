#!/usr/bin/python3
"""cPanel EA4 layout SIMULATION: a stand-in for cPanel's
/usr/local/cpanel/scripts/rebuildhttpdconf on a Debian test host.

It writes /etc/apache2/conf/httpd.conf from /var/cpanel/userdata with the
structure that EasyApache 4's templates give it (ea4_main.default,
vhost.default and ssl_vhost.default in CpanelInc/ea-apache2-config), where a
deployment can tell the difference. The code and wording are this
project's; what follows the vendor is named by file and line in
molecule/cpanel-sim/SIMULATION.md. In short:

* account vhosts are bound to the userdata `ip` and `port`; the server's
  shared IP (/var/cpanel/mainip) gets a default vhost of its own before them,
  `<VirtualHost *>` answers addresses no vhost is bound to, and the
  proxy-subdomains vhost is bound to every IP in use and 127.0.0.1, so it is
  the one that answers requests to 127.0.0.1;
* a domain with `<domain>_SSL` userdata gets an SSL vhost on its ip:443 with
  the certificate files named there, and the server's service certificate
  (/var/cpanel/ssl/cpanel) serves the default and proxy-subdomains SSL vhosts;
* the DCV paths of AutoSSL are excluded from rewriting server-wide with
  [END] rules, which the HTTP vhosts inherit (`RewriteOptions Inherit`, set
  before the userdata includes);
* each account vhost switches to the account with whichever of mod_suexec,
  mod_ruid2 or mpm-itk the profile loads;
* `hascgi: 0` turns CGI off in the vhost and leaves out its ScriptAlias;
* the userdata include directories are read when the file is rebuilt: an
  Include line is written only for a glob that matches a file then; the
  php-fpm handler of a domain that has one follows the includes, and in SSL
  vhosts the proxy-subdomain rewrites follow them too.

The new file is checked with `httpd -t` before it replaces the old one; when
the check fails, the old file stays, Apache's message goes to standard error
and the exit status is 1. The script does not restart Apache (neither does
the real one).

`--print` (this stand-in only) writes the configuration to standard output
and changes nothing. For the simulation's own tests, CPSIM_ROOT names a
directory that stands for / (every path read or written, and every path in
the generated file, is taken under it) and CPSIM_HTTPD the command whose
`-d <ServerRoot> -t -f <file>` checks a new file (default /usr/sbin/httpd).
"""

import glob
import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

# The paths of EA4's `paths` settings, as seen from /.
SERVER_ROOT = "/etc/apache2"
HTTPD_CONF = "/etc/apache2/conf/httpd.conf"
CONF_D = "/etc/apache2/conf.d"
CONF_INCLUDES = "/etc/apache2/conf.d/includes"
CONF_USERDATA = "/etc/apache2/conf.d/userdata"
MODULES_D = "/etc/apache2/conf.modules.d"
RUN_DIR = "/run/apache2"
DOMLOGS = "/etc/apache2/logs/domlogs"
DEFAULT_DOCROOT = "/var/www/html"
USERDATA = "/var/cpanel/userdata"
MAIN_IP = "/var/cpanel/mainip"
SERVICE_SSL = "/var/cpanel/ssl/cpanel"
APACHE_TARGET_VERSION = "2_4"

# The URIs of domain control validation (AutoSSL, and the certificate
# authorities' HTTP checks), as the template's tests list them.
DCV_PATTERNS = (
    r"^/\.well-known/pki-validation/(?: Ballot169)?",
    r"^/\.well-known/cpanel-dcv/[0-9a-zA-Z_-]+$",
    r"^/\.well-known/pki-validation/[A-F0-9]{32}\.txt(?: Sectigo DCV)?$",
)
# The service subdomains cPanel proxies to its own daemons, with the
# ports of their plain-HTTP daemons.
PROXY_SUBDOMAINS = {
    "cpanel": 2082,
    "webmail": 2095,
    "whm": 2086,
    "webdisk": 2077,
    "cpcontacts": 2079,
    "cpcalendars": 2079,
}
AUTOCONFIG_SUBDOMAINS = ("autodiscover", "autoconfig")
PROXY_ALIASES = " ".join(f"{label}.*" for label in [*PROXY_SUBDOMAINS, *AUTOCONFIG_SUBDOMAINS])
CGI_EXTENSIONS = ".cgi .pl .plx .ppl .perl"
# The certificate files an SSL vhost's userdata names.
SSL_KEYS = ("sslcertificatefile", "sslcertificatekeyfile", "sslcacertificatefile")


class RebuildError(Exception):
    pass


@dataclass(frozen=True)
class Layout:
    """Where the server's files are: `root` stands for /."""

    root: Path
    httpd: str

    def path(self, absolute):
        """The path, under root, of a path as seen from /."""
        return str(self.root / absolute.lstrip("/"))

    def exists(self, absolute):
        return os.path.exists(self.path(absolute))

    def is_dir(self, absolute):
        return os.path.isdir(self.path(absolute))

    def matches(self, pattern):
        """Whether a glob (as seen from /) matches a file now."""
        return any(os.path.isfile(match) for match in glob.glob(self.path(pattern)))


@dataclass(frozen=True)
class Vhost:
    """One <VirtualHost> of an account's domain, from its userdata."""

    servername: str
    serveralias: str
    documentroot: str
    serveradmin: str
    usecanonicalname: str
    user: str
    group: str
    owner: str
    hascgi: bool
    ip: str
    port: str
    php_fpm_socket: str
    ssl: dict


def perl_true(value):
    """The template's truth: undef, '', 0 and '0' are false (and a YAML false)."""
    if isinstance(value, bool):
        return value
    return value is not None and str(value) not in ("", "0")


def load_userdata(path):
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise RebuildError(f"cannot read {path}: {error}") from error
    if not isinstance(data, dict):
        raise RebuildError(f"{path}: not a YAML mapping")
    return data


def vhost_from(path, data, ssl):
    required = ["servername", "documentroot", "user", "group", "ip"]
    if ssl:
        required.append("sslcertificatefile")
    missing = [key for key in required if not data.get(key)]
    if missing:
        raise RebuildError(f"{path}: missing {', '.join(missing)}")
    return Vhost(
        servername=str(data["servername"]),
        serveralias=" ".join(str(data.get("serveralias") or "").split()),
        documentroot=str(data["documentroot"]),
        serveradmin=str(data.get("serveradmin") or f"webmaster@{data['servername']}"),
        usecanonicalname=str(data.get("usecanonicalname") or "Off"),
        user=str(data["user"]),
        group=str(data["group"]),
        owner=str(data.get("owner") or ""),
        hascgi=perl_true(data.get("hascgi")),
        ip=str(data["ip"]),
        port=str(data.get("port") or (443 if ssl else 80)),
        php_fpm_socket=str(data.get("php_fpm_socket") or "") if perl_true(data.get("php_fpm")) else "",
        ssl={key: str(data[key]) for key in SSL_KEYS if data.get(key)} if ssl else {},
    )


def account_vhosts(layout):
    """The HTTP and the SSL vhosts of every account's domains."""
    http, https = [], []
    for main in sorted(Path(layout.path(USERDATA)).glob("*/main")):
        user_dir = main.parent
        settings = load_userdata(main)
        main_domain = settings.get("main_domain")
        if not main_domain:
            raise RebuildError(f"{main}: no main_domain")
        for domain in [main_domain, *(settings.get("sub_domains") or [])]:
            plain = user_dir / domain
            http.append(vhost_from(plain, load_userdata(plain), ssl=False))
            secure = user_dir / f"{domain}_SSL"
            if secure.is_file():
                https.append(vhost_from(secure, load_userdata(secure), ssl=True))
    return http, https


def loaded_modules(layout):
    """The identifiers the profile's conf.modules.d loads (EA4's `supported`)."""
    modules = set()
    for conf in sorted(Path(layout.path(MODULES_D)).glob("*.conf")):
        for line in conf.read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "LoadModule":
                modules.add(words[1])
    return modules


def shared_ips(layout):
    """The server's shared IP, as cPanel records it."""
    if not layout.exists(MAIN_IP):
        return []
    ip = Path(layout.path(MAIN_IP)).read_text().strip()
    return [ip] if ip else []


def service_certificate(layout):
    """SSLCertificate* lines for the server's own certificate, in the
    template's order of preference."""
    combined = [f"{SERVICE_SSL}/mycpanel.pem", f"{SERVICE_SSL}/cpanel.pem"]
    for pem in combined:
        if layout.exists(pem):
            path = layout.path(pem)
            return [f"SSLCertificateFile {path}", f"SSLCertificateKeyFile {path}", f"SSLCertificateChainFile {path}"]
    crt, key, cab = (f"{SERVICE_SSL}/cpanel.{ext}" for ext in ("crt", "key", "cab"))
    if layout.exists(crt) and layout.exists(key):
        lines = [f"SSLCertificateFile {layout.path(crt)}", f"SSLCertificateKeyFile {layout.path(key)}"]
        if layout.exists(cab):
            lines.append(f"SSLCertificateChainFile {layout.path(cab)}")
        return lines
    return ["# No service SSL installed for cPanel"]


def indent(lines, depth=1):
    return ["  " * depth + line if line else "" for line in lines]


def block(opening, lines):
    """A configuration section around `lines`."""
    name = opening.split()[0]
    return [f"<{opening}>", *indent(lines), f"</{name}>"]


def rewrite_escape(pattern):
    """A regex as one RewriteCond argument (spaces escaped)."""
    return pattern.replace(" ", "\\ ")


def dcv_conditions():
    last = len(DCV_PATTERNS) - 1
    return [
        f"RewriteCond %{{REQUEST_URI}} {rewrite_escape(pattern)}" + ("" if i == last else " [OR]")
        for i, pattern in enumerate(DCV_PATTERNS)
    ]


def all_proxy_subdomains_regex():
    return "|".join(sorted([*PROXY_SUBDOMAINS, *AUTOCONFIG_SUBDOMAINS]))


def global_dcv_exclude():
    """Server-wide: DCV URIs end rewriting, and are allowed (ea4_main)."""
    rewrite = [
        "# Global DCV Exclude - Rewrites",
        "RewriteEngine on",
        *dcv_conditions(),
        f"RewriteCond %{{HTTP_HOST}} !^(?:{all_proxy_subdomains_regex()})\\.",
        "RewriteRule ^ - [END]",
    ]
    location = ["# Global DCV Exclude - Location", "Satisfy Any", "Order Allow,Deny", "Allow from all"]
    return [
        *block("IfModule rewrite_module", rewrite),
        f'<LocationMatch "({"|".join(DCV_PATTERNS)})">',
        *location,
        "</LocationMatch>",
    ]


def inherit_dcv_exclude():
    return ["# Global DCV Rewrite Exclude", *block("IfModule rewrite_module", ["RewriteOptions Inherit"])]


def identity(vhost):
    """How the vhost's requests and programs become the account: whichever
    of mod_suexec, mod_ruid2 and mpm-itk the profile loads."""
    if vhost.user == "nobody":
        return []
    suexec = block("IfModule !mod_ruid2.c", [f"SuexecUserGroup {vhost.user} {vhost.group}"])
    return [
        *block("IfModule suexec_module", suexec),
        *block("IfModule ruid2_module", ["RMode config", f"RUidGid {vhost.user} {vhost.group}"]),
        *block("IfModule mpm_itk.c", [f"AssignUserID {vhost.user} {vhost.group}"]),
    ]


def legacy_wildcard_safe(domain):
    return domain.replace("*", "_wildcard_")


def userdata_includes(layout, vhost, kind):
    """The Include lines of the vhost's userdata include directories (`std`
    or `ssl`): only for a glob that matches a file now."""
    base = CONF_USERDATA
    if not layout.is_dir(base):
        return []
    lines = []

    def include(pattern):
        if layout.matches(pattern):
            lines.append(f'Include "{layout.path(pattern)}"')

    include(f"{base}/*.conf")
    if vhost.owner:
        include(f"{base}/*.owner-{vhost.owner}")
    if not layout.is_dir(f"{base}/{kind}"):
        return lines
    include(f"{base}/{kind}/*.conf")
    if vhost.owner:
        include(f"{base}/{kind}/*.owner-{vhost.owner}")
    versioned = [f"{base}/{kind}/{APACHE_TARGET_VERSION}", f"{base}/{kind}/2"]
    found = [directory for directory in versioned if layout.is_dir(directory)]
    if not found:
        return lines
    version_dir = found[0]
    include(f"{version_dir}/*.conf")
    if vhost.owner:
        include(f"{version_dir}/*.owner-{vhost.owner}")
    user_dir = f"{version_dir}/{vhost.user}"
    if layout.is_dir(user_dir):
        include(f"{user_dir}/*.conf")
        # Every alias's directory, then the servername's, each once.
        for domain in dict.fromkeys([*vhost.serveralias.split(), vhost.servername]):
            domain_dir = f"{user_dir}/{legacy_wildcard_safe(domain)}"
            if layout.is_dir(domain_dir):
                include(f"{domain_dir}/*.conf")
    return lines


def php_fpm(vhost):
    if not vhost.php_fpm_socket:
        return []
    handler = f"SetHandler proxy:unix:{vhost.php_fpm_socket}|fcgi://{vhost.servername}"
    return block("IfModule proxy_fcgi_module", block(r"FilesMatch \.(phtml|php[0-9]*)$", [handler]))


def customize_hint(layout, vhost, kind):
    directory = f"{CONF_USERDATA}/{kind}/{APACHE_TARGET_VERSION}/{vhost.user}/{legacy_wildcard_safe(vhost.servername)}"
    return [
        "# To customize this VirtualHost use an include file at the following location",
        f'# Include "{layout.path(directory)}/*.conf"',
    ]


def vhost_head(layout, vhost, log_suffix):
    lines = [f"ServerName {vhost.servername}"]
    if vhost.serveralias:
        lines.append(f"ServerAlias {vhost.serveralias}")
    lines += [
        f"DocumentRoot {vhost.documentroot}",
        f"ServerAdmin {vhost.serveradmin}",
        f"UseCanonicalName {vhost.usecanonicalname}",
    ]
    if not vhost.hascgi:
        lines += ["Options -ExecCGI -Includes", f"RemoveHandler cgi-script {CGI_EXTENSIONS}"]
    domlog = f"{layout.path(DOMLOGS)}/{vhost.servername}"
    bytes_log = f'CustomLog {domlog}-bytes_log "%{{%s}}t %I .\\n%{{%s}}t %O ." env=!isproxyrequest'
    lines += [
        f"CustomLog {domlog}{log_suffix} combined env=!isproxyrequest",
        *block("IfModule log_config_module", block("IfModule logio_module", [bytes_log])),
        f"## User {vhost.user} # Needed for Cpanel::ApacheConf",
        *identity(vhost),
    ]
    if vhost.hascgi:
        lines += block("IfModule alias_module", [f"ScriptAlias /cgi-bin/ {vhost.documentroot}/cgi-bin/"])
    return lines


def http_vhost(layout, vhost):
    body = [
        *vhost_head(layout, vhost, ""),
        # Before the includes, so that an include cannot come first.
        *inherit_dcv_exclude(),
        *userdata_includes(layout, vhost, "std"),
        *php_fpm(vhost),
        "",
        *customize_hint(layout, vhost, "std"),
    ]
    return ["", *block(f"VirtualHost {vhost.ip}:{vhost.port}", body)]


def ssl_vhost(layout, vhost, proxysubdomains):
    ssl = ["SSLEngine on", f"SSLCertificateFile {vhost.ssl['sslcertificatefile']}"]
    if vhost.ssl.get("sslcertificatekeyfile"):
        ssl.append(f"SSLCertificateKeyFile {vhost.ssl['sslcertificatekeyfile']}")
    if vhost.ssl.get("sslcacertificatefile"):
        ssl.append(f"SSLCACertificateFile {vhost.ssl['sslcacertificatefile']}")
    ssl += block(f'Directory "{vhost.documentroot}/cgi-bin"', ["SSLOptions +StdEnvVars"])
    body = [
        *vhost_head(layout, vhost, "-ssl_log"),
        *block("IfModule ssl_module", ssl),
        *userdata_includes(layout, vhost, "ssl"),
        *php_fpm(vhost),
        "",
        *customize_hint(layout, vhost, "ssl"),
    ]
    if proxysubdomains:
        body += [
            "",
            *block("IfModule headers_module", ["RequestHeader set X-HTTPS 1"]),
            "RewriteEngine On",
            "RewriteRule ^/Microsoft-Server-ActiveSync /___proxy_activesync/$1 [PT]",
            'ProxyPass "/___proxy_activesync" "http://127.0.0.1:2090/Microsoft-Server-ActiveSync" max=1 retry=0',
        ]
    return ["", *block(f"VirtualHost {vhost.ip}:{vhost.port}", body)]


def default_vhost(layout, address, hostname):
    """A vhost of the server itself: the first for its address, so it
    answers every name no account's vhost there serves."""
    body = [
        f"ServerName {hostname}",
        f"DocumentRoot {layout.path(DEFAULT_DOCROOT)}",
        f"ServerAdmin root@{hostname}",
        *inherit_dcv_exclude(),
        *block(f'Directory "{layout.path(DEFAULT_DOCROOT)}"', ["AllowOverride All"]),
    ]
    return ["", *block(f"VirtualHost {address}", body)]


def proxy_rules(hostname):
    """Requests for cpanel.<domain> and the like go to cPanel's daemons
    (which the simulation does not run)."""
    lines = []
    for label, port in PROXY_SUBDOMAINS.items():
        lines += [
            f"RewriteCond %{{HTTP_HOST}} !^{hostname}$",
            f"RewriteCond %{{HTTP_HOST}} ^{label}\\.",
            f"RewriteRule ^/(.*) http://127.0.0.1:{port}/$1 [P]",
            "",
        ]
    return lines


def proxy_subdomains_vhost(layout, addresses, hostname):
    """The vhost of cpanel.*, webmail.*, ...: bound to every IP in use and
    127.0.0.1, so it is what 127.0.0.1 answers with."""
    body = [
        "ServerName proxy-subdomains-vhost.localhost",
        f"ServerAlias {PROXY_ALIASES}",
        f"DocumentRoot {layout.path(DEFAULT_DOCROOT)}",
        f"ServerAdmin root@{hostname}",
        *block(f'Directory "{layout.path(DEFAULT_DOCROOT)}"', ["AllowOverride All"]),
        "ScriptAlias /.cpanel/dcv /usr/local/cpanel/cgi-priv/get_local.cgi",
        "RewriteEngine On",
        *dcv_conditions(),
        "RewriteRule ^ /.cpanel/dcv [passthrough]",
        "",
        *proxy_rules(hostname),
        "UseCanonicalName Off",
    ]
    return [
        "",
        "# CPANEL/WHM/WEBMAIL/WEBDISK/AUTOCONFIG PROXY SUBDOMAINS",
        *block("VirtualHost " + " ".join(addresses), body),
    ]


def proxy_subdomains_ssl_vhost(layout, addresses, hostname):
    ssl = ["SSLEngine on", *service_certificate(layout)]
    body = [
        f"ServerName {hostname}",
        f"ServerAlias {PROXY_ALIASES}",
        f"DocumentRoot {layout.path(DEFAULT_DOCROOT)}",
        f"ServerAdmin root@{hostname}",
        *block(f'Directory "{layout.path(DEFAULT_DOCROOT)}"', ["AllowOverride All"]),
        "RewriteEngine On",
        *block("IfModule ssl_module", ssl),
        *block("IfModule headers_module", ["RequestHeader set X-HTTPS 1"]),
        *proxy_rules(hostname),
        "UseCanonicalName Off",
    ]
    return ["", *block("VirtualHost " + " ".join(addresses), body)]


def default_ssl_vhost(layout, addresses, hostname):
    ssl = ["SSLEngine on", *service_certificate(layout)]
    body = [
        f"ServerName {hostname}",
        f"DocumentRoot {layout.path(DEFAULT_DOCROOT)}",
        f"ServerAdmin root@{hostname}",
        *block(f'Directory "{layout.path(DEFAULT_DOCROOT)}"', ["AllowOverride All"]),
        *block("IfModule ssl_module", ssl),
        "UseCanonicalName Off",
    ]
    return ["", *block("VirtualHost " + " ".join(addresses), body)]


def optional_include(layout, name):
    path = f"{CONF_INCLUDES}/{name}"
    if layout.exists(path):
        return [f'Include "{layout.path(path)}"']
    return []


HEADER = """\
#
#  DO NOT EDIT. AUTOMATICALLY GENERATED.  USE INCLUDE FILES IF YOU NEED TO MAKE A CHANGE
#
#  cPanel EA4 layout SIMULATION: generated by the simulation's stand-in for
#  /usr/local/cpanel/scripts/rebuildhttpdconf from /var/cpanel/userdata
#  (molecule/cpanel-sim). Changes made here are lost at the next rebuild; put
#  them in conf.d/includes/*.conf, conf.d/*.conf or the userdata include
#  directories conf.d/userdata/{std,ssl}/2_4/<user>/<domain>/.
#"""


def main_section(layout, hostname, supported):
    run_dir = layout.path(RUN_DIR)
    lines = [
        f'Include "{layout.path(MODULES_D)}/*.conf"',
        *optional_include(layout, "pre_main_global.conf"),
        *optional_include(layout, "pre_main_2.conf"),
        "",
        f"PidFile {run_dir}/httpd.pid",
        "User nobody",
        "Group nobody",
        "ExtendedStatus Off",
        "LogLevel warn",
        f"ServerAdmin root@{hostname}",
        f"ServerName {hostname}",
        "TraceEnable Off",
        "ServerSignature Off",
        "ServerTokens ProductOnly",
        "FileETag None",
        "",
        *block('Directory "/"', ["AllowOverride All", "Options ExecCGI FollowSymLinks IncludesNOEXEC Indexes"]),
        "",
        "StartServers 3",
        *block("IfModule prefork.c", ["MinSpareServers 2", "MaxSpareServers 5"]),
        "ServerLimit 64",
        "MaxRequestWorkers 64",
        "MaxConnectionsPerChild 10000",
        "KeepAlive On",
        "KeepAliveTimeout 5",
        "MaxKeepAliveRequests 100",
        "Timeout 300",
        "",
        *global_dcv_exclude(),
        "",
        # The simulation's choice; WHM's DirectoryIndex Priority sets it on a real server.
        *block("IfModule dir_module", ["DirectoryIndex index.html index.htm index.cgi"]),
        "",
        *block(
            f'Directory "{layout.path(DEFAULT_DOCROOT)}"',
            [
                "Options All",
                "AllowOverride None",
                "Require all granted",
                'Header set Cache-Control "no-cache, no-store, must-revalidate"',
                'Header set Pragma "no-cache"',
                "Header set Expires 0",
            ],
        ),
        '<FilesMatch "^(\\.ht(access|passwds?)|\\.user\\.ini|php\\.ini)$">',
        "  Require all denied",
        "</FilesMatch>",
        *block('Files ~ "^error_log$"', block("RequireAll", ["Require all denied"])),
        "",
        *block(
            "IfModule alias_module",
            [
                *(
                    f"ScriptAliasMatch ^/?{path} /usr/local/cpanel/cgi-sys/{program}"
                    for path, program in (
                        ("controlpanel/?$", "redirect.cgi"),
                        ("cpanel/?$", "redirect.cgi"),
                        ("kpanel/?$", "redirect.cgi"),
                        ("securecontrolpanel/?$", "sredirect.cgi"),
                        ("securecpanel/?$", "sredirect.cgi"),
                        ("securewhm/?$", "swhmredirect.cgi"),
                        ("webmail$", "wredirect.cgi"),
                        ("webmail/", "wredirect.cgi"),
                        ("whm/?$", "whmredirect.cgi"),
                    )
                ),
                "Alias /img-sys /usr/local/cpanel/img-sys/",
                "Alias /java-sys /usr/local/cpanel/java-sys/",
                "Alias /sys_cpanel /usr/local/cpanel/sys_cpanel/",
                "ScriptAlias /cgi-sys /usr/local/cpanel/cgi-sys/",
            ],
        ),
        "",
        *block(
            "IfModule mime_module",
            [
                "TypesConfig conf/mime.types",
                "AddType application/x-compress .Z",
                "AddType application/x-gzip .gz .tgz",
                "AddType text/html .shtml",
                # Server-wide: a .cgi runs wherever ExecCGI is on.
                f"AddHandler cgi-script {CGI_EXTENSIONS}",
                "AddHandler server-parsed .shtml",
            ],
        ),
        "",
        *block(
            "IfModule log_config_module",
            [
                'LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{Referer}i\\" \\"%{User-Agent}i\\"" combined',
                'LogFormat "%h %l %u %t \\"%r\\" %>s %b" common',
                "CustomLog logs/access_log combined env=!isproxyrequest",
            ],
        ),
        "",
        "Listen 0.0.0.0:80",
        *block(
            "IfModule ssl_module",
            [
                "SSLPassPhraseDialog builtin",
                *block(
                    "IfModule socache_shmcb_module", [f"SSLSessionCache shmcb:{run_dir}/ssl_gcache_data_shmcb(1024000)"]
                ),
                *block("IfModule !socache_shmcb_module", [f"SSLSessionCache dbm:{run_dir}/ssl_gcache_data_dbm"]),
                "SSLSessionCacheTimeout 300",
                f"Mutex file:{run_dir} ssl-cache",
                "SSLRandomSeed startup builtin",
                "SSLRandomSeed connect builtin",
                "Listen 0.0.0.0:443",
                "AddType application/x-x509-ca-cert .crt",
                "AddType application/x-pkcs7-crl .crl",
            ],
        ),
        "",
        f'Include "{layout.path(CONF_D)}/*.conf"',
        *optional_include(layout, "account_suspensions.conf"),
        *optional_include(layout, "errordocument.conf"),
        *optional_include(layout, "pre_virtualhost_global.conf"),
        *optional_include(layout, "pre_virtualhost_2.conf"),
    ]
    if "proxy_module" in supported:
        lines.append("ProxyPass /cpanelwebcall/ http://127.0.0.1:2082/cpanelwebcall/ max=1 retry=0")
    return lines


def render(layout):
    hostname = socket.gethostname()
    supported = loaded_modules(layout)
    proxysubdomains = {"proxy_module", "rewrite_module"} <= supported
    http, https = account_vhosts(layout)
    shared = shared_ips(layout)
    ips_in_use = list(dict.fromkeys(vhost.ip for vhost in http))
    lines = [HEADER, *main_section(layout, hostname, supported)]
    for ip in shared:
        lines += default_vhost(layout, f"{ip}:80", hostname)
    lines += default_vhost(layout, "*", hostname)
    lines += ["", "# BEGIN: HTTP vhosts list"]
    for vhost in http:
        lines += http_vhost(layout, vhost)
    lines += ["# END: HTTP vhosts list", "", "# BEGIN: HTTPS vhosts list"]
    for vhost in https:
        lines += ssl_vhost(layout, vhost, proxysubdomains)
    lines += ["# END: HTTPS vhosts list"]
    if proxysubdomains:
        local = list(dict.fromkeys([*ips_in_use, "127.0.0.1"]))
        lines += proxy_subdomains_vhost(layout, [f"{ip}:80" for ip in local], hostname)
        lines += proxy_subdomains_ssl_vhost(layout, [f"{ip}:443" for ip in local], hostname)
    lines += ["", *optional_include(layout, "post_virtualhost_global.conf")]
    lines += optional_include(layout, "post_virtualhost_2.conf")
    lines += ["", "# Domain forwarding is currently disabled."]
    lines += default_ssl_vhost(layout, [*(f"{ip}:443" for ip in shared), "*:443"], hostname)
    return "\n".join(lines) + "\n"


def syntax_check(layout, candidate):
    """Apache's verdict on a new file: None if it passes, else its message."""
    command = [*layout.httpd.split(), "-d", layout.path(SERVER_ROOT), "-t", "-f", candidate]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return None
    return (result.stderr + result.stdout).strip() or f"{command[0]} -t exited {result.returncode}"


def install(layout, text):
    """Check the new file beside the old one, then put it in place, or
    leave the old one and raise with Apache's message."""
    target = Path(layout.path(HTTPD_CONF))
    fd, candidate = tempfile.mkstemp(prefix=".httpd.conf.", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(candidate, 0o644)
        problem = syntax_check(layout, candidate)
        if problem:
            raise RebuildError(
                f"the new configuration failed Apache's syntax check; {target} was left as it was:\n{problem}"
            )
        os.replace(candidate, target)
    finally:
        Path(candidate).unlink(missing_ok=True)
    return target


def layout_from(environment):
    return Layout(
        root=Path(environment.get("CPSIM_ROOT") or "/"),
        httpd=environment.get("CPSIM_HTTPD") or "/usr/sbin/httpd",
    )


def main(argv):
    if argv not in ([], ["--print"]):
        print("usage: rebuildhttpdconf [--print]  (cPanel EA4 layout SIMULATION stand-in)", file=sys.stderr)
        return 2
    layout = layout_from(os.environ)
    try:
        text = render(layout)
        if argv == ["--print"]:
            sys.stdout.write(text)
            return 0
        target = install(layout, text)
    except (RebuildError, OSError) as error:
        print(f"rebuildhttpdconf: {error}", file=sys.stderr)
        return 1
    print(f"Built {target} OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
