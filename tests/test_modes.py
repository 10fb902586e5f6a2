"""The mode table in playbooks/vars/modes.yml agrees with the specs and the roles."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def load(relative):
    # safe_load: Jinja expressions stay plain strings.
    return yaml.safe_load((ROOT / relative).read_text())


MODES_FILE = load("playbooks/vars/modes.yml")
MODES = MODES_FILE["site__modes"]
WIRED = MODES_FILE["site__wired_variables"]


def modes_of(connector):
    return sorted(mode for mode, row in MODES.items() if row["connector"] == connector)


def test_the_table_has_a_row_for_every_choice_of_the_mode_variable():
    spec = load("playbooks/vars/argument_specs.yml")["argument_specs"]["main"]["options"]["wsgi_deployment_mode"]
    assert list(MODES) == spec["choices"]
    assert spec["default"] in MODES


@pytest.mark.parametrize("mode", list(MODES))
def test_each_row_names_a_role_that_can_retire_the_mode(mode):
    connector = MODES[mode]["connector"]
    role = ROOT / "roles" / connector
    assert role.is_dir(), f"{mode}: no role {connector}"
    spec_file = role / "meta" / "argument_specs.yml"
    assert spec_file.is_file(), f"{mode}: {connector} has no meta/argument_specs.yml"
    assert "retire" in yaml.safe_load(spec_file.read_text())["argument_specs"], (
        f"{mode}: {connector} has no retire entry point"
    )
    assert (role / "tasks" / "retire.yml").is_file(), f"{mode}: {connector} has no tasks/retire.yml"


@pytest.mark.parametrize("mode", list(MODES))
def test_each_row_says_who_runs_the_app(mode):
    assert MODES[mode]["runs_as"] in ("apache", "app", "cgi")
    assert isinstance(MODES[mode]["account"], bool)


def test_the_gateway_serves_every_mode_routed_to_it():
    routed = modes_of("wsgate")
    assert routed
    assert set(routed) <= set(load("roles/wsgate/vars/main.yml")["__wsgate__modes"])


def test_mod_wsgi_serves_every_mode_routed_to_it():
    routed = modes_of("mod_wsgi")
    assert routed
    assert set(routed) <= set(load("roles/mod_wsgi/vars/main.yml")["__mod_wsgi__modes"])


@pytest.mark.parametrize("variable", WIRED)
def test_a_wired_variable_is_not_documented_as_a_setting(variable):
    # serve.yml derives these from the mode; a `main` spec entry would make
    # them look settable (and validate.yml refuses them from the inventory).
    specs = [ROOT / "playbooks/vars/argument_specs.yml", *sorted(ROOT.glob("roles/*/meta/argument_specs.yml"))]
    for path in specs:
        options = (yaml.safe_load(path.read_text())["argument_specs"].get("main") or {}).get("options") or {}
        assert variable not in options, f"{variable} is documented in {path.relative_to(ROOT)}"
