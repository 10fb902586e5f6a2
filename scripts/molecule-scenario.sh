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

read -r actions containers < <("$venv/bin/python" - "$scenario" <<'PY'
import sys
from pathlib import Path

import yaml

def scenario(path):
    return yaml.safe_load(Path(path).read_text()) or {}

own = scenario(f"molecule/{sys.argv[1]}/molecule.yml")
steps = own.get("scenario", {}).get("test_sequence") or scenario(".config/molecule/config.yml")["scenario"]["test_sequence"]
# `molecule create` runs the prepare playbook itself.
print(",".join(step for step in steps if step not in ("destroy", "syntax", "prepare")),
      ",".join(platform["name"] for platform in own.get("platforms", [])))
PY
)
actions=${actions//,/ }

# CPU seconds, to see where make test's time goes: what this script's
# children used (molecule, Ansible, pytest on the controller), and what the
# scenario's containers used (their cgroups, read before they go).
# `times` must run in this shell (a command substitution is a new process
# whose children are not these), so the function sets $cpu.
cpu_file=$(mktemp)
controller_cpu() {
  times > "$cpu_file"
  cpu=$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%d", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$cpu_file")
}
containers_cpu() {
  local name path total=0 usage
  for name in ${containers//,/ }; do
    path=$(podman inspect --format '{{.State.CgroupPath}}' "$name" 2>/dev/null) || continue
    if [ -r "/sys/fs/cgroup/cpuacct$path/cpuacct.usage" ]; then
      usage=$(( $(cat "/sys/fs/cgroup/cpuacct$path/cpuacct.usage") / 1000000000 ))
    elif [ -r "/sys/fs/cgroup$path/cpu.stat" ]; then
      usage=$(( $(awk '$1 == "usage_usec" { print $2 }' "/sys/fs/cgroup$path/cpu.stat") / 1000000 ))
    else
      continue
    fi
    total=$(( total + usage ))
  done
  echo "$total"
}

# A scenario's idempotence-hosts file names the hosts whose second converge
# its idempotence step runs (all of them without it).
idempotence_hosts=
if [ -f "molecule/$scenario/idempotence-hosts" ]; then
  idempotence_hosts=$(grep -v '^[[:space:]]*\(#\|$\)' "molecule/$scenario/idempotence-hosts" | paste -sd, -)
  [ -n "$idempotence_hosts" ] || { echo "molecule/$scenario/idempotence-hosts names no host" >&2; exit 2; }
  for name in ${idempotence_hosts//,/ }; do
    case ",$containers," in
      *",$name,"*) ;;
      *) echo "molecule/$scenario/idempotence-hosts: '$name' is not a platform of the scenario ($containers)" >&2; exit 2 ;;
    esac
  done
fi

trap 'molecule destroy -s "$scenario" >/dev/null 2>&1 || true; rm -f "$cpu_file"' EXIT
molecule destroy -s "$scenario" >/dev/null 2>&1 || true
total=$(date +%s)
echo "==> $scenario: $summary"
for action in $actions; do
  echo "==> molecule $action -s $scenario"
  start=$(date +%s)
  controller_cpu
  cpu_before=$cpu
  if [ "$action" = check ]; then
    # Molecule's check passes --check; a user's preview is --check --diff.
    ANSIBLE_DIFF_ALWAYS=true molecule "$action" -s "$scenario"
  elif [ "$action" = idempotence ] && [ -n "$idempotence_hosts" ]; then
    molecule idempotence -s "$scenario" -- --limit "$idempotence_hosts"
  else
    # The sequence says side_effect; the command is side-effect.
    molecule "${action//_/-}" -s "$scenario"
  fi
  controller_cpu
  echo "==> $scenario: $action took $(( $(date +%s) - start ))s (controller $(( cpu - cpu_before )) CPU s)"
done
controller_cpu
echo "==> $scenario: passed in $(( $(date +%s) - total ))s ($summary; controller $cpu CPU s, containers $(containers_cpu) CPU s)"
