"""The el role's `selinux` entry point where SELinux is not enabled (this Debian host).

Its arguments are validated, and then every task that would label or set
booleans is skipped. The mode/kind table is checked too: what the entry
point would apply for each mode, computed by Ansible from vars/main.yml.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = {
    "name": "sampleapp",
    "root": "/srv/sampleapp",
    "app_dir": "/srv/sampleapp/app",
    "venv": "/srv/sampleapp/venv",
    "entry_dir": "/srv/sampleapp/wsgi",
    "env_file": "/srv/sampleapp/env",
    "static_root": "/srv/sampleapp/static",
    "media_root": "/srv/sampleapp/media",
}

# What the platform role would publish on an EL 9 host.
PLATFORM = {"family": "RedHat", "distribution": "AlmaLinux", "major": 9, "ea4": False, "privileged": True}

PLAYBOOK = """\
- name: SELinux for the app
  hosts: localhost
  connection: local
  gather_facts: true
  gather_subset: [min]
  tasks:
    - name: Run the el role's selinux entry point
      ansible.builtin.include_role:
        name: el
        tasks_from: selinux
        public: true
    - name: Report what it would apply
      ansible.builtin.debug:
        msg:
          fcontexts: "{{ __el__fcontexts }}"
          booleans: "{{ __el__booleans }}"
"""


def run(tmp_path, **extra):
    playbook = tmp_path / "play" / "selinux.yml"
    playbook.parent.mkdir()
    playbook.write_text(PLAYBOOK)
    (tmp_path / "roles").symlink_to(ROOT / "roles")
    extra_vars = tmp_path / "vars.json"
    extra_vars.write_text(json.dumps({"el__app": APP, "platform__host": PLATFORM, **extra}))
    return subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "ansible-playbook"),
            *("-i", "localhost,", str(playbook), "-e", f"@{extra_vars}"),
            *("-e", f"ansible_python_interpreter={sys.executable}"),
        ],
        check=False,
        capture_output=True,
        text=True,
        # Not the project's directory: its ansible.cfg adds a timing callback to the output.
        cwd=tmp_path,
        env={
            **os.environ,
            "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_LOCALHOST_WARNING": "0",
        },
        timeout=180,
    )


def tasks(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    play = json.loads(result.stdout)["plays"][0]
    # Names of role tasks may come as "el : <name>".
    return {task["task"]["name"].split(" : ")[-1]: task["hosts"]["localhost"] for task in play["tasks"]}


def test_everything_is_skipped_without_selinux(tmp_path):
    done = tasks(run(tmp_path, el__mode="cgi"))
    assert done["Check the app and the mode"].get("failed") is not True
    for name in ("Install the SELinux management tools", "Set the file context rules", "Turn on the mode's booleans"):
        assert done[name].get("skipped") is True, (name, done[name])


# Per mode: the booleans, and what the role that serves it puts on the host
# (its `<role>__serving` fact) with the rules that must follow from it.
CASES = {
    "embedded": ([], {"libraries": ["/opt/django-vps/mod_wsgi"]}, {}),
    "fastcgi": (["httpd_can_network_connect"], {"run": ["/run/wsgate"]}, {}),
    "cgi": (["httpd_enable_cgi"], {"scripts": ["/srv/sampleapp/wsgate/app.cgi"]}, {}),
    "fcgid": (["httpd_enable_cgi"], {"scripts": ["/srv/sampleapp/wsgate/app.fcgi"]}, {}),
    "relay": (
        ["httpd_enable_cgi"],
        {"scripts": ["/srv/sampleapp/wsgate/app.cgi"], "rw": ["/srv/sampleapp/relay"]},
        {},
    ),
}
RULES = {
    "embedded": {"lib_t": ["/opt/django\\-vps/mod_wsgi/.*\\.so(\\.[0-9]+)*"]},
    "fastcgi": {"httpd_var_run_t": ["/run/wsgate(/.*)?"]},
    "cgi": {"httpd_sys_script_exec_t": ["/srv/sampleapp/wsgate/app\\.cgi"]},
    "fcgid": {"httpd_sys_script_exec_t": ["/srv/sampleapp/wsgate/app\\.fcgi"]},
    "relay": {"httpd_sys_script_exec_t": ["/srv/sampleapp/wsgate/app\\.cgi"]},
}


@pytest.mark.parametrize("mode", list(CASES))
def test_the_table_gives_each_mode_its_types_and_booleans(tmp_path, mode):
    booleans, serving, _ = CASES[mode]
    report = tasks(run(tmp_path, el__mode=mode, el__backend_tcp=True, el__serving=serving))
    report = report["Report what it would apply"]["msg"]
    assert report["booleans"] == booleans
    by_type = {}
    for rule in report["fcontexts"]:
        by_type.setdefault(rule["setype"], []).append(rule["target"])
    assert sorted(by_type.pop("httpd_sys_content_t")) == sorted(
        f"/srv/sampleapp{sub}(/.*)?" for sub in ("", "/app", "/venv", "/wsgi", "/env", "/static")
    )
    extra_rw = [f"{path}(/.*)?" for path in serving.get("rw", [])]
    assert by_type.pop("httpd_sys_rw_content_t") == [
        "/srv/sampleapp/media(/.*)?",
        "/srv/sampleapp/data(/.*)?",
        *extra_rw,
    ]
    assert by_type == RULES[mode]


def test_compiled_extensions_in_the_virtualenvs_are_libraries(tmp_path):
    app = {**APP, "venvs": "/srv/sampleapp/venvs"}
    report = tasks(run(tmp_path, el__mode="daemon", el__app=app))["Report what it would apply"]["msg"]
    libraries = [rule["target"] for rule in report["fcontexts"] if rule["setype"] == "lib_t"]
    assert libraries == ["/srv/sampleapp/venvs/.*\\.so(\\.[0-9]+)*"]


def test_a_database_over_tcp_needs_its_boolean(tmp_path):
    report = tasks(run(tmp_path, el__mode="daemon", el__database_tcp=True))["Report what it would apply"]["msg"]
    assert report["booleans"] == ["httpd_can_network_connect_db"]


def test_an_app_under_home_needs_homedirs(tmp_path):
    home = {key: value.replace("/srv/", "/home/") for key, value in APP.items()}
    result = run(tmp_path, el__mode="daemon", el__backend_tcp=False)
    assert "httpd_enable_homedirs" not in tasks(result)["Report what it would apply"]["msg"]["booleans"]
    other = tmp_path / "home"
    other.mkdir()
    report = tasks(run(other, el__mode="daemon", el__backend_tcp=False, el__app=home))["Report what it would apply"]
    assert report["msg"]["booleans"] == ["httpd_enable_homedirs"]


def test_an_unknown_mode_is_refused_by_the_argument_specs(tmp_path):
    result = run(tmp_path, el__mode="uwsgi")
    assert result.returncode != 0
    assert "uwsgi" in result.stdout and "choices" in result.stdout
