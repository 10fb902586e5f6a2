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


def assert_nothing_after_validation(result):
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    # Nothing after the validation play ran: no facts gathered, no role entered.
    assert "Gathering Facts" not in output
    assert "Serve the Django app through Apache" not in output
    assert "apache :" not in output
    return output


def assert_stopped_at_validation(result):
    output = assert_nothing_after_validation(result)
    assert "Validation of arguments failed" in output
    return output


def wired_message(variable):
    return (
        f"{variable} is decided by wsgi_deployment_mode (playbooks/vars/modes.yml) and"
        " cannot be set in the inventory; remove it and choose the mode instead."
    )


def test_wrong_mode_names_the_variable_and_the_allowed_values(inventory):
    output = assert_stopped_at_validation(run_site(inventory, "wsgi_deployment_mode=cgi-ish"))
    message = "value of wsgi_deployment_mode must be one of: embedded, daemon, fastcgi, fcgid, cgi, relay, got: cgi-ish"
    assert message in output


def test_wrong_type_names_the_variable(inventory):
    output = assert_stopped_at_validation(run_site(inventory, "mod_wsgi__processes=two"))
    assert "argument 'mod_wsgi__processes' is of type str and we were unable to convert to int" in output


def test_wrong_gateway_type_names_the_variable(inventory):
    output = assert_stopped_at_validation(run_site(inventory, "wsgate__processes=two"))
    assert "argument 'wsgate__processes' is of type str and we were unable to convert to int" in output


def test_a_wait_for_the_live_site_under_a_second_is_refused(inventory):
    output = assert_nothing_after_validation(run_site(inventory, "django__served_timeout=0"))
    assert "django__served_timeout is 0: set the seconds (1 or more)" in output


@pytest.mark.parametrize("variable", ["django__process_user=root", "mod_wsgi__mode=daemon"])
def test_a_wired_variable_is_refused(inventory, variable):
    name = variable.split("=", 1)[0]
    output = assert_nothing_after_validation(run_site(inventory, variable))
    assert wired_message(name) in output


def test_every_wired_variable_set_is_named(inventory):
    output = assert_nothing_after_validation(run_site(inventory, "django__process_user=root", "mod_wsgi__mode=daemon"))
    assert wired_message("django__process_user") in output
    assert wired_message("mod_wsgi__mode") in output


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
