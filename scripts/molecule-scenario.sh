#!/usr/bin/env bash
# Run one Molecule scenario's test sequence an action at a time, printing how
# long each took; the scenario's containers are destroyed whatever happens.
#   scripts/molecule-scenario.sh SCENARIO
set -euo pipefail
scenario=${1:?usage: molecule-scenario.sh SCENARIO}
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
. scripts/env.sh

actions=$(python3 - "$scenario" <<'PY'
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
for action in $actions; do
  echo "==> molecule $action -s $scenario"
  start=$(date +%s)
  molecule "$action" -s "$scenario"
  echo "==> $scenario: $action took $(( $(date +%s) - start ))s"
done
echo "==> $scenario: passed in $(( $(date +%s) - total ))s"
