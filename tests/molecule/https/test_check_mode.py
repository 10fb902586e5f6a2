"""`site.yml --check --diff` previews a deploy. On the converged host, which
nothing has changed since, it must run to the end, report no change and
print the app's secret key. (The preview of a fresh host is the scenario's
`check` step, before its converge.)"""

import re

from conftest import APP, converge, inventory_hosts, node

SECRET = f"/srv/{APP}/secret_key"


def changed_tasks(output, name):
    """The tasks the play reported as changed on one host."""
    tasks, task = set(), None
    for line in output.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith(f"changed: [{name}]"):
            tasks.add(task)
    return sorted(tasks)


def test_check_diff_on_a_steady_host_changes_nothing(whole_scenario):
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
        secret = node(name).file(SECRET).content_string.strip()
        assert len(secret) >= 32, f"{SECRET} on {name} is not a secret key"
        assert secret not in output, f"{SECRET} is in the preview's output"
