"""site.yml checks the inventory before it touches a host."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


@pytest.fixture()
def inventory(tmp_path):
    # A local host in check mode: even a validation that let a bad value
    # through could not change this machine.
    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  children:\n    vps:\n      hosts:\n        target:\n          ansible_connection: local\n")
    return path


def run_site(inventory, *extra_vars):
    args = [ANSIBLE_PLAYBOOK, "site.yml", "-i", str(inventory), "--check"]
    for assignment in extra_vars:
        args += ["-e", assignment]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)


def assert_stopped_at_validation(result):
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Validation of arguments failed" in output
    # Nothing after the validation play ran: no facts gathered, no role entered.
    assert "Gathering Facts" not in output
    assert "apache :" not in output
    return output


def test_wrong_mode_names_the_variable_and_the_allowed_values(inventory):
    output = assert_stopped_at_validation(run_site(inventory, "wsgi_deployment_mode=cgi-ish"))
    assert "value of wsgi_deployment_mode must be one of: embedded, daemon, got: cgi-ish" in output


def test_wrong_type_names_the_variable(inventory):
    output = assert_stopped_at_validation(run_site(inventory, "mod_wsgi__processes=two"))
    assert "argument 'mod_wsgi__processes' is of type str and we were unable to convert to int" in output


def test_wrong_role_choice_names_the_variable(inventory):
    output = assert_stopped_at_validation(run_site(inventory, "apache__mpm=threaded"))
    assert "value of apache__mpm must be one of: event, worker, prefork, got: threaded" in output


def test_valid_values_pass_validation(inventory):
    # Only the validation play: a good inventory must get past it.
    result = subprocess.run(
        [ANSIBLE_PLAYBOOK, "playbooks/validate.yml", "-i", str(inventory), "-e", "wsgi_deployment_mode=daemon"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
