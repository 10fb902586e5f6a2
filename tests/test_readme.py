"""The README's variable reference is generated from the argument specs."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ROLE_SPECS = sorted(ROOT.glob("roles/*/meta/argument_specs.yml"))


def test_variable_tables_match_the_argument_specs():
    result = subprocess.run(
        [sys.executable, "scripts/vardocs.py", "--check"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_every_role_has_an_argument_spec():
    roles = sorted(path.name for path in (ROOT / "roles").iterdir() if path.is_dir())
    assert roles
    for role in roles:
        assert (ROOT / "roles" / role / "meta" / "argument_specs.yml").is_file(), role


def test_every_spec_file_has_a_table():
    readme = (ROOT / "README.md").read_text()
    assert "### site.yml\n" in readme
    for path in ROLE_SPECS:
        assert f"### {path.parents[1].name} role\n" in readme, path


def _is_template(value):
    return isinstance(value, str) and "{{" in value


@pytest.mark.parametrize("spec", ROLE_SPECS, ids=lambda path: path.parents[1].name)
def test_spec_defaults_match_the_role_defaults(spec):
    # The rule: where defaults/main.yml holds a literal value, the spec's
    # `default:` must be that value. Where defaults/main.yml holds a Jinja
    # string ("{{ ... }}"), the spec describes the default in words ("the app
    # name", "<root>/app") and is not compared.
    defaults_file = spec.parents[1] / "defaults" / "main.yml"
    defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.is_file() else {}
    options = (yaml.safe_load(spec.read_text())["argument_specs"].get("main") or {}).get("options") or {}
    compared = 0
    for name, option in options.items():
        if "default" not in option or name not in defaults or _is_template(defaults[name]):
            continue
        assert option["default"] == defaults[name], (
            f"{name}: spec says {option['default']!r}, defaults/main.yml {defaults[name]!r}"
        )
        compared += 1
    assert compared or not defaults, f"no literal default of {spec} was compared"
