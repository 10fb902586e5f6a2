"""The README's variable reference is generated from the argument specs."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
