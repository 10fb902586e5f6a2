"""`site.yml --check --diff` previews a deploy: on the scenario's converged
hosts, which nothing has changed since, it must run to the end on every host
and report no change."""

import re

from conftest import converge, inventory_hosts


def changed_tasks(output, name):
    """The tasks the play reported as changed on one host."""
    tasks, task = set(), None
    for line in output.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith(f"changed: [{name}]"):
            tasks.add(task)
    return sorted(tasks)


def test_check_diff_on_steady_hosts_changes_nothing(whole_scenario):
    hosts = inventory_hosts()
    result = converge(",".join(hosts), options=("--check", "--diff"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    for name in hosts:
        recap = re.search(
            rf"^{re.escape(name)}\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output, re.M
        )
        assert recap, f"no recap line for {name}"
        changed, unreachable, failed = map(int, recap.groups())
        assert (unreachable, failed) == (0, 0), name
        assert changed == 0, (name, changed_tasks(output, name))
