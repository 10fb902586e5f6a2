"""playbooks/controller.yml stops ansible-core 2.17+ at an EL 7 host, before
anything else runs, and lets the EL7 controller (.venv-el7, ansible-core
2.16) through. The hosts are containers of the local Debian 12 image whose
release files are replaced by those of the platform under test."""

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "localhost/vps-debian:12"
CONTROLLERS = {
    "default": ROOT / ".venv" / "bin",
    "el7": ROOT / ".venv-el7" / "bin",
}
FIX = "`make venv-el7`, then `.venv-el7/bin/ansible-playbook site.yml -i "

CENTOS7 = """NAME="CentOS Linux"
VERSION="7 (Core)"
ID="centos"
ID_LIKE="rhel fedora"
VERSION_ID="7"
PRETTY_NAME="CentOS Linux 7 (Core)"
CPE_NAME="cpe:/o:centos:centos:7"
"""

# host name: (/etc/os-release, /etc/redhat-release, is an EL 7 host);
# None for /etc/os-release keeps the image's own (Debian 12).
PLATFORMS = {
    "debian12": (None, None, False),
    "centos7": (CENTOS7, "CentOS Linux release 7.9.2009 (Core)\n", True),
    "cloudlinux7": (
        'NAME="CloudLinux"\nVERSION="7.9 (Boris Yegorov)"\nID="cloudlinux"\nID_LIKE="rhel fedora centos"\n'
        'VERSION_ID="7.9"\nPRETTY_NAME="CloudLinux 7.9 (Boris Yegorov)"\n',
        None,
        True,
    ),
    "rhel7": (
        'NAME="Red Hat Enterprise Linux Server"\nID="rhel"\nID_LIKE="fedora"\nVERSION_ID="7.9"\n'
        'PRETTY_NAME="Red Hat Enterprise Linux Server 7.9 (Maipo)"\n',
        None,
        True,
    ),
    "oracle7": ('NAME="Oracle Linux Server"\nID="ol"\nID_LIKE="fedora"\nVERSION_ID="7.9"\n', None, True),
    "alma8": (
        'NAME="AlmaLinux"\nID="almalinux"\nID_LIKE="rhel centos fedora"\nVERSION_ID="8.10"\n'
        'PRETTY_NAME="AlmaLinux 8.10 (Cerulean Leopard)"\n',
        None,
        False,
    ),
    # No /etc/os-release at all: /etc/redhat-release decides.
    "redhat-release-only": ("", "CentOS Linux release 7.9.2009 (Core)\n", True),
}


def _podman_env():
    """The environment with scripts/env.sh sourced (the project's containers.conf)."""
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: run `make host-packages`")
    dump = subprocess.run(
        ["bash", "-c", "source scripts/env.sh >/dev/null && env -0"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return dict(line.split("=", 1) for line in dump.split("\0") if "=" in line)


def _podman(env, *args, stdin=None):
    return subprocess.run(["podman", *args], env=env, input=stdin, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def env():
    env = _podman_env()
    if _podman(env, "image", "exists", IMAGE).returncode != 0:
        pytest.fail(f"the image {IMAGE} is missing: run `make images` (scripts/build-image.sh 12)")
    for name, bin_dir in CONTROLLERS.items():
        if not (bin_dir / "ansible-playbook").is_file():
            pytest.fail(f"the {name} controller is missing: run `make {bin_dir.parent.name.lstrip('.')}`")
    return env


@pytest.fixture(scope="module")
def inventory(env, tmp_path_factory):
    """One container per platform, removed whatever happens."""
    prefix = f"controller-test-{uuid.uuid4().hex[:8]}"
    names = []
    try:
        hosts = {}
        for host, (os_release, redhat_release, _) in PLATFORMS.items():
            name = f"{prefix}-{host}"
            names.append(name)
            started = _podman(env, "run", "-d", "--name", name, "--network", "none", IMAGE, "sleep", "infinity")
            assert started.returncode == 0, started.stderr
            if os_release is not None:
                written = _podman(env, "exec", "-i", name, "sh", "-c", _writer(os_release, redhat_release))
                assert written.returncode == 0, written.stderr
            hosts[host] = {"ansible_connection": "containers.podman.podman", "ansible_host": name}
        path = tmp_path_factory.mktemp("controller") / "hosts.yml"
        path.write_text(json.dumps({"all": {"hosts": hosts}}))
        yield path
    finally:
        for name in names:
            _podman(env, "rm", "-f", "-t", "0", name)


def _writer(os_release, redhat_release):
    """A shell command that replaces the container's release files."""
    script = "rm -f /etc/os-release /usr/lib/os-release /etc/redhat-release"
    if os_release:
        script += f" && printf %s {_quote(os_release)} > /etc/os-release"
    if redhat_release:
        script += f" && printf %s {_quote(redhat_release)} > /etc/redhat-release"
    return script


def _quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


def run(controller, playbook, inventory, env, *args):
    result = subprocess.run(
        [str(CONTROLLERS[controller] / "ansible-playbook"), playbook, "-i", str(inventory), *args],
        cwd=ROOT,
        env={**env, "ANSIBLE_CALLBACK_RESULT_FORMAT": "json", "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    output = result.stdout + result.stderr
    recap = {
        host: {"ok": int(ok), "failed": int(failed), "unreachable": int(unreachable)}
        for host, ok, unreachable, failed in re.findall(
            r"^(\S+)\s+: ok=(\d+)\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)", result.stdout, re.MULTILINE
        )
    }
    return result.returncode, recap, output


def test_the_default_controller_refuses_el7_hosts_with_the_fix(env, inventory):
    returncode, recap, output = run("default", "playbooks/controller.yml", inventory, env)
    assert returncode != 0, output
    assert set(recap) == set(PLATFORMS), output
    for host, (_, _, el7) in PLATFORMS.items():
        assert recap[host]["unreachable"] == 0, output
        assert recap[host]["failed"] == int(el7), f"{host}: {recap[host]}\n{output}"
        refused = re.search(rf"^fatal: \[{re.escape(host)}\]: FAILED! => (.*)$", output, re.MULTILINE)
        assert bool(refused) == el7, output
        if el7:
            message = json.loads(refused.group(1))["msg"]
            assert f"{FIX}{inventory}`" in message, message
            assert "an EL 7 host" in message, message
    assert "CentOS Linux 7 (Core), an EL 7 host" in output


def test_the_el7_controller_manages_every_host(env, inventory):
    returncode, recap, output = run("el7", "playbooks/controller.yml", inventory, env)
    assert returncode == 0, output
    assert set(recap) == set(PLATFORMS), output
    assert all(counts["failed"] == 0 and counts["ok"] == 1 for counts in recap.values()), output
    assert "make venv-el7" not in output


def test_site_yml_stops_at_the_guard_before_validation(env, inventory):
    returncode, recap, output = run("default", "site.yml", inventory, env, "--limit", "centos7")
    assert returncode != 0, output
    assert recap == {"centos7": {"ok": 1, "failed": 1, "unreachable": 0}}, output
    assert FIX in output
    assert "TASK [Validate the inventory's variables]" not in output
    assert "Gathering Facts" not in output


def test_site_yml_parses_under_the_el7_controller():
    result = subprocess.run(
        [str(CONTROLLERS["el7"] / "ansible-playbook"), "--syntax-check", "site.yml", "-i", "inventory/vps"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
