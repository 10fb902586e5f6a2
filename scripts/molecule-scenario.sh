#!/usr/bin/env bash
# Run one Molecule scenario's test sequence an action at a time, printing how
# long each took; the scenario's containers are destroyed whatever happens.
# A scenario whose molecule/<scenario>/controller file says `el7` runs under
# the EL7 controller (.venv-el7, ansible-core 2.16), the others under .venv.
#   scripts/molecule-scenario.sh SCENARIO
set -euo pipefail
scenario=${1:?usage: molecule-scenario.sh SCENARIO}
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
. scripts/env.sh

controller=default
venv=.venv
if [ -f "molecule/$scenario/controller" ]; then
  controller=$(tr -d '[:space:]' < "molecule/$scenario/controller")
  [ "$controller" = el7 ] || { echo "molecule/$scenario/controller: unknown controller '$controller' (el7 is the one)" >&2; exit 2; }
  venv=.venv-el7
fi
[ -x "$venv/bin/molecule" ] || { echo "$venv/bin/molecule is missing: run make ${venv#.}" >&2; exit 2; }
# molecule, ansible-playbook and the verifier's pytest all come from this venv.
PATH="$PWD/$venv/bin:$PATH"
export PATH
core=$("$venv/bin/python" -c 'from ansible.release import __version__; print(__version__)')
summary="controller $controller, ansible-core $core"

actions=$("$venv/bin/python" - "$scenario" <<'PY'
import sys
from pathlib import Path

import yaml

def sequence(path):
    data = yaml.safe_load(Path(path).read_text()) or {}
    return data.get("scenario", {}).get("test_sequence")

steps = sequence(f"molecule/{sys.argv[1]}/molecule.yml") or sequence(".config/molecule/config.yml")
# `molecule create` runs the prepare playbook itself.
print(" ".join(step for step in steps if step not in ("destroy", "syntax", "prepare")))
PY
)

trap 'molecule destroy -s "$scenario" >/dev/null 2>&1 || true' EXIT
molecule destroy -s "$scenario" >/dev/null 2>&1 || true
total=$(date +%s)
echo "==> $scenario: $summary"
for action in $actions; do
  echo "==> molecule $action -s $scenario"
  start=$(date +%s)
  if [ "$action" = check ]; then
    # Molecule's check passes --check; a user's preview is --check --diff.
    ANSIBLE_DIFF_ALWAYS=true molecule "$action" -s "$scenario"
  else
    molecule "$action" -s "$scenario"
  fi
  echo "==> $scenario: $action took $(( $(date +%s) - start ))s"
done
echo "==> $scenario: passed in $(( $(date +%s) - total ))s ($summary)"
