"""Deploys on every mode of the `modes` scenario, in plays over its hosts,
as a user would run them: every host takes changed code under load (each
mode puts it in service its own way); then, in two plays side by side, the
other hosts take a rollback (the same plays, with the release that ran
before) while the hosts of REFUSALS, one per connector kind and Debian 12's,
take a release that must be refused, and must go on serving the live one
byte for byte, even after their processes restart."""

import json
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import (
    APP,
    MODES,
    PLAIN_OUTPUT,
    PROJECT,
    address_of,
    changed_app,
    copy_scripts,
    curl_prefix,
    inventory_hosts,
    mode_of,
    node,
    platform_of,
)

pytestmark = pytest.mark.before_switch

LOAD = Path(__file__).with_name("load.py")
REMOTE = "/root/release-test"

# What makes a release unfit, and the host that gets it (one per connector
# kind, and Debian 12's): `environment` is a setting that goes with it.
REFUSALS = {
    "migration": {"host": "fcgid-d12", "reason": "manage.py migrate failed"},
    "check": {"host": "daemon-d13", "reason": "check --deploy reported", "environment": {"DJANGO_DEBUG": "1"}},
    "smoke": {"host": "fastcgi-d13", "reason": "answered 500"},
}


def refusal_of(name):
    return next(refusal for refusal, row in REFUSALS.items() if row["host"] == name)


def broken_app(path, refusal, marker):
    changed_app(path, marker)
    if refusal == "migration":
        migrations = path / "notes/migrations"
        latest = sorted(p.stem for p in migrations.glob("[0-9]*.py"))[-1]
        (migrations / "9999_refused.py").write_text(
            "from django.db import migrations\n\n\n"
            "def refuse(apps, schema_editor):\n"
            "    raise RuntimeError('this migration fails on purpose')\n\n\n"
            "class Migration(migrations.Migration):\n"
            f"    dependencies = [('notes', '{latest}')]\n"
            "    operations = [migrations.RunPython(refuse)]\n"
        )
    elif refusal == "smoke":
        views = path / "notes/views.py"
        views.write_text(
            views.read_text().replace(
                "def home(request):\n", "def home(request):\n    raise RuntimeError('this release fails on purpose')\n"
            )
        )
    return path


def run_playbook(playbook, limit, extra_vars, verbosity=""):
    command = [str(Path(sys.executable).parent / "ansible-playbook"), playbook]
    command += ["-i", os.environ["MOLECULE_INVENTORY_FILE"], "--limit", limit, "-e", json.dumps(extra_vars)]
    if verbosity:
        command.append(verbosity)
    started = time.monotonic()
    result = subprocess.run(command, cwd=PROJECT, env=PLAIN_OUTPUT, capture_output=True, text=True, check=False)
    return result, round(time.monotonic() - started, 1)


def recap(output, name):
    match = re.search(
        rf"^{re.escape(name)}\s+:\s+ok=\d+\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)", output, re.M
    )
    assert match, f"no recap line for {name}"
    return int(match.group(1)) + int(match.group(2))


def fatal_message(output, name):
    """What the play said when it stopped on a host, on one line (the
    callback wraps long messages)."""
    match = re.search(rf"fatal: \[{re.escape(name)}\]: FAILED! => (.{{0,4000}}?)(?:\n\S|\Z)", output, re.S)
    return " ".join(match.group(1).split()) if match else f"no fatal line for {name}"


class Snapshot:
    """What a visitor and the host see of the live release."""

    def __init__(self, host):
        platform = platform_of(host)
        root = platform["root"]
        curl = curl_prefix(host, platform)
        self.home = host.check_output(f"{curl}/")
        css = re.search(r'href="(/static/[^"]+\.css)"', self.home)
        assert css, "the home page links no stylesheet"
        self.css = host.check_output(f"{curl}{css.group(1)}")
        self.current = host.check_output(f"readlink {root}/current")
        self.env = host.check_output(f"sha256sum {root}/env")
        self.missing_page = host.run(f"{curl}/no-such-page/").stdout


def restart_processes(host):
    """What a logrotate reload or a reboot does: every process that runs the
    app starts again and reads the settings and the code afresh."""
    service = platform_of(host)["service"]
    host.check_output(f"systemctl reload {service}")
    host.run(f"systemctl restart wsgate-{APP}.service")
    # [w]: the pattern must not match the shell that runs pkill.
    host.run("pkill -f '[w]sgate relay' || true")
    time.sleep(2)


def start_load(host, platform, marker):
    copy_scripts(host, REMOTE, LOAD)
    args = [f"http://{address_of(host, platform)}/", platform["server_name"], marker, f"{platform['root']}/secret_key"]
    args += [f"{REMOTE}/stop", f"{REMOTE}/result.json", str(MODES[mode_of(host)].get("redeploy_connections", 16))]
    quoted = " ".join(shlex.quote(arg) for arg in args)
    host.check_output(f"setsid nohup python3 {REMOTE}/load.py {quoted} >{REMOTE}/load.log 2>&1 </dev/null &")


def stop_load(host):
    host.check_output(f"touch {REMOTE}/stop")
    # Each client may first finish a request in flight (60 s timeout).
    for _ in range(600):
        if host.file(f"{REMOTE}/result.json").exists:
            return json.loads(host.file(f"{REMOTE}/result.json").content_string)
        time.sleep(0.5)
    raise AssertionError(f"the load generator left no result: {host.run(f'cat {REMOTE}/load.log').stdout}")


@pytest.fixture(scope="module")
def hosts():
    every = {name: node(name) for name in inventory_hosts()}
    if not any(name.endswith(("-d12", "-d13")) for name in every):
        pytest.skip("not applicable here: the deploy walk runs in the `modes` scenario, on Debian 12 and 13 hosts")
    return every


def test_redeploy_rollback_and_refusals(hosts, tmp_path, whole_scenario):
    # New code on every run, so that the test can run again on the same hosts.
    marker = f"changed-release-{uuid.uuid4().hex[:12]}"
    for name in hosts:
        changed_app(tmp_path / "changed" / name, marker)
    before = {name: Snapshot(h) for name, h in hosts.items()}
    secrets = {name: h.check_output(f"cat {platform_of(h)['root']}/secret_key").strip() for name, h in hosts.items()}

    for h in hosts.values():
        start_load(h, platform_of(h), marker)
    try:
        result, seconds = run_playbook(
            "site.yml",
            ",".join(hosts),
            {"django__source": "local", "django__local_path": f"{tmp_path}/changed/{{{{ inventory_hostname }}}}"},
            verbosity="-vvv",
        )
    finally:
        loads = {name: stop_load(h) for name, h in hosts.items()}
    output = result.stdout + result.stderr
    print(f"deploy over {len(hosts)} hosts at -vvv: {seconds} s")
    for name, load in sorted(loads.items()):
        print(
            f"{name}: {load['counts']} from {load['connections']} connections in {load['seconds']} s, "
            f"new code first seen at {load['first_marked']} s"
        )

    for name, secret in secrets.items():
        assert secret not in output, f"{name}'s secret key is in the play's output"
    for name, load in loads.items():
        assert load["secret_on_command_lines"] == [], name

    for name, h in hosts.items():
        assert recap(output, name) == 0, name
        after = Snapshot(h)
        assert marker in after.home, name
        assert after.current != before[name].current, name
        assert h.check_output(f"readlink {platform_of(h)['root']}/previous") == before[name].current
        load = loads[name]
        assert load["first_marked"] is not None, f"{name}: the load never saw the new code"
        if MODES[mode_of(h)]["redeploy_without_failures"]:
            assert load["failed"] == 0, f"{name}: {load['failures']}"

    # Then, side by side: the other hosts go back to the release that ran
    # before, while the hosts of REFUSALS are given a release that must be
    # refused (marked apart from the live one, so that it shows if served).
    refused = {row["host"]: hosts[row["host"]] for row in REFUSALS.values() if row["host"] in hosts}
    rolled = {name: h for name, h in hosts.items() if name not in refused}
    assert refused and rolled, sorted(hosts)
    for name in refused:
        broken_app(tmp_path / "broken" / name, refusal_of(name), f"{marker}-refused")
    environments = {name: REFUSALS[refusal_of(name)].get("environment", {}) for name in refused}
    live = {name: Snapshot(h) for name, h in refused.items()}
    with ThreadPoolExecutor(max_workers=2) as plays:
        rollback = plays.submit(run_playbook, "playbooks/rollback.yml", ",".join(rolled), {})
        refusals = plays.submit(
            run_playbook,
            "site.yml",
            ",".join(refused),
            {
                "django__source": "local",
                "django__local_path": f"{tmp_path}/broken/{{{{ inventory_hostname }}}}",
                "django__environment": f"{{{{ {json.dumps(environments)}.get(inventory_hostname, {{}}) }}}}",
            },
        )
        (rollback_result, rollback_seconds), (result, seconds) = rollback.result(), refusals.result()
    print(f"rollback over {len(rolled)} hosts: {rollback_seconds} s")
    print(f"refused deploys over {len(refused)} hosts: {seconds} s")

    output = rollback_result.stdout + rollback_result.stderr
    for name, h in rolled.items():
        assert recap(output, name) == 0, output[-3000:]
        after = Snapshot(h)
        assert after.current == before[name].current, name
        assert after.home == before[name].home, name
        assert marker not in after.home

    output = result.stdout + result.stderr
    for name, h in refused.items():
        reason = REFUSALS[refusal_of(name)]["reason"]
        assert recap(output, name) == 1, name
        message = fatal_message(output, name)
        assert "stays offline" in message and reason in message, f"{name}: {message}"
        for moment in ("after the refused deploy", "after its processes restarted"):
            after = Snapshot(h)
            for part in ("home", "css", "current", "env", "missing_page"):
                assert getattr(after, part) == getattr(live[name], part), f"{name}, {part}, {moment}"
            restart_processes(h)
