"""Checks that only the cPanel EA4 layout SIMULATION (scenario cpanel-sim,
hosts `*-cpsim` and `*-cpacct`) has: the app's site must reach Apache the
way it does on cPanel, as an include inside the vhost cPanel generates for
the account's domain, with httpd.conf left to cPanel; Apache runs as nobody
and must not be able to change the account's code. The shared tests in
../site cover the rest through the PLATFORMS rows `cpanel-sim` and
`cpanel-account`; test_sim_account.py the account's deployment without
root."""

import re

from conftest import APP, PLATFORMS, not_applicable, platform_of

SIM = PLATFORMS["cpanel-sim"]
SIM_ROWS = (SIM, PLATFORMS["cpanel-account"])
HTTPD_CONF = "/etc/apache2/conf/httpd.conf"
REBUILD = "/usr/local/cpanel/scripts/rebuildhttpdconf"
# The profile's module files prepare.yml wrote, which no mode may take away.
PROFILE_MODULES = {
    "000_mod_mpm_prefork.conf": "mpm_prefork_module",
    "005_mod_cgi.conf": "cgi_module",
    "060_mod_proxy.conf": "proxy_module",
    "065_mod_proxy_fcgi.conf": "proxy_fcgi_module",
    "090_mod_suexec.conf": "suexec_module",
}


def vhosts(conf):
    """The <VirtualHost> blocks of a configuration, as lists of stripped,
    non-empty, non-comment lines between the opening and closing tags."""
    blocks, block = [], None
    for raw in conf.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("<VirtualHost"):
            block = []
        elif line == "</VirtualHost>":
            blocks.append(block)
            block = None
        elif block is not None:
            block.append(line)
    return blocks


def server_name(block):
    for line in block:
        match = re.match(r"ServerName\s+(\S+)$", line)
        if match:
            return match.group(1)
    return None


def test_sim_host_says_it_is_a_simulation(host):
    assert any(platform_of(host) is row for row in SIM_ROWS)
    assert "SIMULATION" in host.file("/etc/cpanel/ea4/SIMULATION").content_string
    assert "SIMULATION" in host.check_output("systemctl show -p Description --value httpd")
    assert host.file("/etc/cpanel/ea4/is_ea4").exists
    assert host.file("/usr/local/cpanel/version").exists


def test_sim_site_is_included_inside_the_account_vhost(host):
    not_applicable(platform_of(host), "site_include")
    include = f'Include "{SIM["sites"]}/*.conf"'
    assert host.file(SIM["site_file"].format(name=APP)).exists
    blocks = vhosts(host.file(HTTPD_CONF).content_string)
    mine = [block for block in blocks if server_name(block) == SIM["server_name"]]
    assert len(mine) == 1, blocks
    # The userdata includes are the last directives of the vhost.
    tail = [line for line in mine[0] if not line.startswith("Include ")]
    assert mine[0][len(tail) :] == [line for line in mine[0] if line.startswith("Include ")], mine[0]
    assert include in mine[0], mine[0]
    others = [block for block in blocks if block is not mine[0]]
    assert not any(include in block for block in others)


def test_sim_httpd_conf_is_what_rebuildhttpdconf_generates(host):
    """The roles never edited httpd.conf: it is exactly what cPanel (here the
    simulation's stand-in) generates from the userdata and the include files
    there are now."""
    current = host.file(HTTPD_CONF).content_string
    assert "DO NOT EDIT. AUTOMATICALLY GENERATED" in current
    assert host.check_output(f"{REBUILD} --print") == current.rstrip("\n")


def test_sim_apache_children_run_as_nobody(host):
    processes = [line.split(None, 2) for line in host.check_output("ps -eo user=,ppid=,args=").splitlines()]
    # mod_wsgi's daemon processes rename themselves, so they are not listed.
    apache = [fields for fields in processes if len(fields) == 3 and fields[2].startswith("/usr/sbin/apache2 ")]
    parents = [user for user, ppid, _ in apache if ppid == "1"]
    children = [user for user, ppid, _ in apache if ppid != "1"]
    assert parents == ["root"], apache
    assert children, apache
    assert set(children) == {SIM["user"]}, apache


def test_sim_app_code_and_venv_are_not_writable_by_nobody(host):
    """Nothing under the app's releases and virtualenvs is owned by nobody,
    writable by everyone, group-writable for group nobody, or writable for
    nobody through an ACL."""
    root = platform_of(host)["root"]
    paths = f"{root}/releases {root}/venvs"
    assert host.file(f"{root}/current/app").is_directory and host.file(f"{root}/current/venv").is_directory
    writable = host.check_output(
        f"find {paths} ! -type l \\( -user nobody -o -perm -o+w -o \\( -group nobody -perm -g+w \\) \\) -print"
    )
    assert writable == ""
    acls = host.check_output(f"getfacl -R -s -p {paths} 2>/dev/null || true")
    assert not re.search(r"^(user|group):nobody:.w", acls, re.MULTILINE), acls
    # And as Apache's user, on the files that matter most.
    for path in (f"{root}/current/app/manage.py", f"{root}/current/venv/bin/python", f"{root}/current/app"):
        assert host.run(f"sudo -u nobody -g nobody test -w {path}").rc == 1, path


def test_sim_profile_module_files_stay(host):
    """The EA4 profile owns conf.modules.d: whatever the mode, its files stay
    and load their modules."""
    modules = host.check_output(f"{SIM['ctl']} -M")
    for name, module in PROFILE_MODULES.items():
        assert f"LoadModule {module}" in host.file(f"{SIM['mods']}/{name}").content_string, name
        assert module in modules, module


def test_sim_debian_apache_package_is_not_installed(host):
    """cPanel servers get Apache only from EA4: the roles must not install
    the distribution's Apache beside it."""
    assert host.run("dpkg -s apache2").rc != 0
    assert not host.file("/etc/apache2/apache2.conf").exists
    assert not host.service("apache2").is_enabled
