"""Checks that only the cPanel EA4 layout SIMULATION (scenario cpanel-sim,
hosts `*-cpitk`, `*-cpsuexec` and `*-cpacct`) has: the app's site must reach Apache the
way it does on cPanel, as an include inside the vhosts cPanel generates for
the account's domain (bound to the account's IP), with httpd.conf left to
cPanel; Apache runs as nobody and must not be able to change the account's
code; the simulated EA4 profile (molecule/cpanel-sim/prepare.yml) stays as
it was laid out. The shared tests in ../site cover the rest through the
PLATFORMS rows `cpanel-itk`, `cpanel-suexec` and `cpanel-account`;
test_sim_account.py the account's deployment without root."""

import re
import time

import pytest
import yaml
from conftest import APP, PLATFORMS, PROJECT, converge, inventory_hosts, node, not_applicable, platform_of

# What the rows of root's deploys share (paths, names, Apache's user).
SIM = PLATFORMS["cpanel-itk"]
SIM_ROWS = (SIM, PLATFORMS["cpanel-suexec"], PLATFORMS["cpanel-account"])
HTTPD_CONF = "/etc/apache2/conf/httpd.conf"
REBUILD = "/usr/local/cpanel/scripts/rebuildhttpdconf"
MARKER = "/etc/cpanel/ea4/SIMULATION"
MAIN_IP = "/var/cpanel/mainip"
USERDATA = "/var/cpanel/userdata"


def simulation_settings():
    """The prepare play's vars: modules, profiles and accounts."""
    plays = yaml.safe_load((PROJECT / "molecule/cpanel-sim/prepare.yml").read_text())
    return next(play["vars"] for play in plays if "cpsim_profiles" in (play.get("vars") or {}))


def simulated_profile(host):
    """The EA4 profile prepare laid out on the host (itk or suexec)."""
    match = re.search(r"^Simulated EA4 profile: (\S+)$", host.file(MARKER).content_string, re.MULTILINE)
    assert match, f"{MARKER} names no profile"
    return match.group(1)


def vhosts(conf):
    """The <VirtualHost> blocks of a configuration, as (addresses, lines)
    with the lines stripped, without blank lines and comments."""
    blocks, block = [], None
    for raw in conf.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("<VirtualHost "):
            block = (line[len("<VirtualHost ") : -1].split(), [])
        elif line == "</VirtualHost>":
            blocks.append(block)
            block = None
        elif block is not None:
            block[1].append(line)
    return blocks


def server_name(lines):
    for line in lines:
        match = re.match(r"ServerName\s+(\S+)$", line)
        if match:
            return match.group(1)
    return None


def test_sim_host_says_it_is_a_simulation(host):
    assert any(platform_of(host) is row for row in SIM_ROWS)
    assert "SIMULATION" in host.file(MARKER).content_string
    assert simulated_profile(host) in simulation_settings()["cpsim_profiles"]
    assert "SIMULATION" in host.check_output("systemctl show -p Description --value httpd")
    assert host.file("/etc/cpanel/ea4/is_ea4").exists
    assert host.file("/usr/local/cpanel/version").exists


def test_sim_accounts_are_bound_to_the_host_s_own_address(host):
    """As on cPanel, the accounts' vhosts listen on the server's main IP:
    127.0.0.1 reaches cPanel's proxy-subdomains vhost, never an account."""
    ip = host.file(MAIN_IP).content_string.strip()
    assert ip and not ip.startswith("127."), ip
    assert ip in host.check_output("hostname -I").split()
    accounts = host.check_output(f"ls {USERDATA}").split()
    assert accounts
    listing = host.check_output(f"{SIM['ctl']} -S")
    for block_addresses, lines in vhosts(host.file(HTTPD_CONF).content_string):
        name = server_name(lines)
        owner = next((line.split()[2] for line in lines if line.startswith("## User ")), None)
        if owner in accounts:
            assert all(address.startswith(f"{ip}:") for address in block_addresses), (name, block_addresses)
    local = host.check_output(f"curl -sS --max-time 60 -H 'Host: {SIM['server_name']}' http://127.0.0.1/")
    assert "Default virtual host of a cPanel EA4 layout SIMULATION" in local, local
    assert re.search(r"^127\.0\.0\.1:80\s+proxy-subdomains-vhost\.localhost ", listing, re.MULTILINE), listing


def test_sim_site_is_included_inside_the_account_vhosts(host):
    """The site's std include is read inside the domain's HTTP vhost only,
    its ssl include (when the role wrote one) inside its SSL vhost only."""
    not_applicable(platform_of(host), "site_include")
    ip = host.file(MAIN_IP).content_string.strip()
    assert host.file(SIM["site_file"].format(name=APP)).exists
    blocks = vhosts(host.file(HTTPD_CONF).content_string)
    expected = {f"{ip}:80": SIM["sites"]}
    ssl_sites = SIM["sites"].replace("/userdata/std/", "/userdata/ssl/")
    if host.file(f"{ssl_sites}/{APP}.conf").exists:
        expected[f"{ip}:443"] = ssl_sites
    for address, sites in expected.items():
        include = f'Include "{sites}/*.conf"'
        mine = [
            lines for addresses, lines in blocks if addresses == [address] and server_name(lines) == SIM["server_name"]
        ]
        assert len(mine) == 1, (address, blocks)
        assert include in mine[0], mine[0]
        # EA4 excludes the DCV paths from rewriting before the includes.
        if address.endswith(":80"):
            assert mine[0].index("RewriteOptions Inherit") < mine[0].index(include), mine[0]
        others = [lines for _, lines in blocks if lines is not mine[0]]
        assert not any(include in lines for lines in others)


def test_sim_httpd_conf_is_what_rebuildhttpdconf_generates(host):
    """The roles never edited httpd.conf: it is exactly what cPanel (here the
    simulation's stand-in) generates from the userdata and the include files
    there are now."""
    current = host.file(HTTPD_CONF).content_string
    assert "DO NOT EDIT. AUTOMATICALLY GENERATED" in current
    assert host.check_output(f"{REBUILD} --print") == current.rstrip("\n")


def settled_processes(host):
    """(pid, ppid, user, args) of the processes that are there, unchanged,
    in two listings a second apart. A process Apache has just forked (a
    child before it drops root, a CGI or fcgid program before its exec) is
    still Apache's root or nobody for an instant; the other checks' requests
    make such forks at any time."""

    def listing():
        return {tuple(line.split(None, 3)) for line in host.check_output("ps -eo pid=,ppid=,user=,args=").splitlines()}

    first = listing()
    time.sleep(1)
    return sorted(first & listing())


def test_sim_apache_children_run_as_nobody(host):
    """Apache's children are nobody. Under the itk profile a child forks a
    process per connection, which becomes the vhost's account."""
    accounts = set(host.check_output(f"ls {USERDATA}").split())
    processes = settled_processes(host)
    # mod_wsgi's daemon processes rename themselves, so they are not listed.
    apache = {pid: (ppid, user) for pid, ppid, user, args in processes if args.startswith("/usr/sbin/apache2 ")}
    parents = [pid for pid, (ppid, _) in apache.items() if ppid == "1"]
    assert len(parents) == 1 and apache[parents[0]][1] == "root", apache
    children = {pid: user for pid, (ppid, user) in apache.items() if ppid == parents[0]}
    assert children and set(children.values()) == {SIM["user"]}, apache
    per_connection = {user for pid, (ppid, user) in apache.items() if ppid in children}
    allowed = accounts | {SIM["user"]} if simulated_profile(host) == "itk" else set()
    assert per_connection <= allowed, apache


def test_sim_accounts_have_no_other_groups(host):
    """mpm-itk gives a request the account's groups from /etc/group, cPanel's
    mod_ruid2 none: the simulation stands for cPanel Default only while no
    account belongs to another group (SIMULATION.md)."""
    for account in host.check_output(f"ls {USERDATA}").split():
        primary = host.check_output(f"id -g {account}")
        assert host.check_output(f"id -G {account}").split() == [primary], account


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
    """The EA4 profile owns conf.modules.d: whatever the mode, the files
    prepare laid out for the host's profile stay and load their modules."""
    settings = simulation_settings()
    modules = host.check_output(f"{SIM['ctl']} -M")
    profile = settings["cpsim_profiles"][simulated_profile(host)]
    for module in settings["cpsim_modules"] + profile["modules"]:
        identifier = f"{module['module']}_module"
        assert f"LoadModule {identifier} " in host.file(f"{SIM['mods']}/{module['file']}.conf").content_string
        assert identifier in modules, identifier


def test_sim_itk_profile_refuses_mod_fcgid(host):
    """EA4's mod_fcgid conflicts with mod_ruid2 and mpm-itk: on the itk
    profile it can neither be installed nor loaded."""
    if simulated_profile(host) != "itk":
        pytest.skip("not applicable here: only the itk profile refuses mod_fcgid")
    assert "mpm_itk_module" in host.check_output(f"{SIM['ctl']} -M")
    assert "fcgid_module" not in host.check_output(f"{SIM['ctl']} -M")
    assert not host.file("/etc/apache2/modules/mod_fcgid.so").exists
    refused = host.run("apt-get install --simulate --no-install-recommends libapache2-mod-fcgid")
    assert refused.rc != 0, refused.stdout


def test_sim_debian_apache_package_is_not_installed(host):
    """cPanel servers get Apache only from EA4: the roles must not install
    the distribution's Apache beside it."""
    assert host.run("dpkg -s apache2").rc != 0
    assert not host.file("/etc/apache2/apache2.conf").exists
    assert not host.service("apache2").is_enabled


@pytest.mark.before_switch
def test_sim_fcgid_is_refused_under_the_default_profile_before_anything_changes():
    """cPanel's default profile (mod_ruid2; mpm-itk here) conflicts with
    mod_fcgid: asked for fcgid, the play stops before it changes anything,
    says why and what to pick, and the site keeps serving."""
    names = [name for name in inventory_hosts() if platform_of(node(name)) is SIM]
    if not names:
        pytest.skip("not applicable here: no host of this scenario simulates the default profile with root")
    name = names[0]
    host = node(name)
    site_file = SIM["site_file"].format(name=APP)
    before = host.file(site_file).content_string
    result = converge(name, "wsgi_deployment_mode=fcgid")
    words = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr).split())
    assert result.returncode != 0, words[-3000:]
    assert "wsgi_deployment_mode=fcgid cannot run on this server" in words, words[-3000:]
    assert "conflicts with ea-apache24-mod_ruid2 and ea-apache24-mod_mpm_itk" in words, words[-3000:]
    assert "pick daemon, fastcgi, cgi or relay" in words, words[-3000:]
    assert re.search(rf"{re.escape(name)}\s*:.*\bchanged=0\b.*\bfailed=1\b", words), words[-3000:]
    assert host.file(site_file).content_string == before
    assert "fcgid_module" not in host.check_output(f"{SIM['ctl']} -M")
