"""The el role's `repos` entry point on realistic CentOS 7 repository files.

Nothing EL runs here, but `repos` only edits the files under
`el__repos_dir`: the play runs on the controller itself (the local
connection) against a directory that holds CentOS 7's stock files, with
each ansible-core the project supports (.venv: 2.19; .venv-el7: 2.16, when
present). The modules are the ones a CentOS 7 host would run.
"""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CENTOS_BASE = """\
# CentOS-Base.repo
#
# The mirror system uses the connecting IP address of the client and the
# update status of each mirror to pick mirrors that are updated to and
# geographically close to the client.

[base]
name=CentOS-$releasever - Base
mirrorlist=http://mirrorlist.centos.org/?release=$releasever&arch=$basearch&repo=os&infra=$infra
#baseurl=http://mirror.centos.org/centos/$releasever/os/$basearch/
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7

#released updates
[updates]
name=CentOS-$releasever - Updates
mirrorlist=http://mirrorlist.centos.org/?release=$releasever&arch=$basearch&repo=updates&infra=$infra
#baseurl=http://mirror.centos.org/centos/$releasever/updates/$basearch/
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7

#additional packages that may be useful
[extras]
name=CentOS-$releasever - Extras
mirrorlist=http://mirrorlist.centos.org/?release=$releasever&arch=$basearch&repo=extras&infra=$infra
#baseurl=http://mirror.centos.org/centos/$releasever/extras/$basearch/
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7

#additional packages that extend functionality of existing packages
[centosplus]
name=CentOS-$releasever - Plus
mirrorlist=http://mirrorlist.centos.org/?release=$releasever&arch=$basearch&repo=centosplus&infra=$infra
#baseurl=http://mirror.centos.org/centos/$releasever/centosplus/$basearch/
gpgcheck=1
enabled=0
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7
"""

SCLO_RH = """\
# CentOS-SCLo-rh.repo
#
# Please see http://wiki.centos.org/SpecialInterestGroup/SCLo for more
# information

[centos-sclo-rh]
name=CentOS-7 - SCLo rh
#baseurl=http://mirror.centos.org/centos/7/sclo/$basearch/rh/
mirrorlist=http://mirrorlist.centos.org?arch=$basearch&release=7&repo=sclo-rh
gpgcheck=1
enabled=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-SIG-SCLo

[centos-sclo-rh-testing]
name=CentOS-7 - SCLo rh Testing
baseurl=http://buildlogs.centos.org/centos/7/sclo/$basearch/rh/
gpgcheck=0
enabled=0
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-SIG-SCLo
"""

EPEL = """\
[epel]
name=Extra Packages for Enterprise Linux 7 - $basearch
#baseurl=http://download.fedoraproject.org/pub/epel/7/$basearch
metalink=https://mirrors.fedoraproject.org/metalink?repo=epel-7&arch=$basearch&infra=$infra&content=$contentdir
failovermethod=priority
enabled=1
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-EPEL-7

[epel-debuginfo]
name=Extra Packages for Enterprise Linux 7 - $basearch - Debug
#baseurl=http://download.fedoraproject.org/pub/epel/7/$basearch/debug
metalink=https://mirrors.fedoraproject.org/metalink?repo=epel-debug-7&arch=$basearch&infra=$infra&content=$contentdir
failovermethod=priority
enabled=0
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-EPEL-7
gpgcheck=1
"""

# Already moved by its admin to a mirror of their choice: left alone.
CUSTOM_SCLO = """\
[centos-sclo-sclo]
name=CentOS-7 - SCLo sclo
baseurl=https://mirror.example.net/centos-vault/7.9.2009/sclo/$basearch/sclo/
gpgcheck=1
enabled=1
"""

FILES = {
    "CentOS-Base.repo": CENTOS_BASE,
    "CentOS-SCLo-scl-rh.repo": SCLO_RH,
    "CentOS-SCLo-scl.repo": CUSTOM_SCLO,
    "epel.repo": EPEL,
}

PLAYBOOK = """\
- name: Move CentOS 7 to the vault
  hosts: all
  gather_facts: false
  tasks:
    - name: Run the el role's repos entry point
      ansible.builtin.include_role:
        name: el
        tasks_from: repos
"""

VENVS = [
    pytest.param(ROOT / ".venv", id="ansible-core-2.19"),
    pytest.param(ROOT / ".venv-el7", id="ansible-core-2.16"),
]


def put_files(repos):
    repos.mkdir()
    for file, text in FILES.items():
        (repos / file).write_text(text)


def read(repos, file):
    return (repos / file).read_text()


def run_playbook(venv, repos, tmp_path):
    playbook = tmp_path / "repos.yml"
    playbook.write_text(PLAYBOOK)
    command = [str(venv / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]
    command += ["-e", f"el__repos_dir={repos}", "-e", "ansible_python_interpreter={{ ansible_playbook_python }}"]
    result = subprocess.run(
        command,
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(ROOT / "roles")},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (recap,) = [line for line in result.stdout.splitlines() if line.startswith("localhost") and "ok=" in line]
    return int(recap.split("changed=")[1].split()[0])


def section(text, name):
    block = text.split(f"[{name}]\n", 1)[1]
    return block.split("\n[", 1)[0]


@pytest.mark.parametrize("venv", VENVS)
def test_repos_move_to_the_vault_once(venv, tmp_path):
    if not (venv / "bin" / "ansible-playbook").exists():
        pytest.skip(f"{venv.name} is not installed")
    repos = tmp_path / "yum.repos.d"
    put_files(repos)

    assert run_playbook(venv, repos, tmp_path) > 0

    base = read(repos, "CentOS-Base.repo")
    for repo, path in [("base", "os"), ("updates", "updates"), ("extras", "extras"), ("centosplus", "centosplus")]:
        text = section(base, repo)
        assert f"\nbaseurl=http://vault.centos.org/7.9.2009/{path}/$basearch/\n" in text
        assert "\n#mirrorlist=http://mirrorlist.centos.org/" in text
        assert "\nmirrorlist" not in text
    # Only the URLs changed: the rest of each section is intact.
    assert section(base, "centosplus").endswith("enabled=0\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7\n")
    assert base.startswith("# CentOS-Base.repo\n")

    sclo = read(repos, "CentOS-SCLo-scl-rh.repo")
    rh = section(sclo, "centos-sclo-rh")
    assert "\nbaseurl=http://vault.centos.org/7.9.2009/sclo/$basearch/rh/\n" in rh
    assert "\n#mirrorlist=http://mirrorlist.centos.org?arch=$basearch&release=7&repo=sclo-rh\n" in rh
    assert section(sclo, "centos-sclo-rh-testing") == section(SCLO_RH, "centos-sclo-rh-testing")

    epel = read(repos, "epel.repo")
    main = section(epel, "epel")
    assert "\nbaseurl=https://dl.fedoraproject.org/pub/archive/epel/7/$basearch/\n" in main
    assert "\n#metalink=https://mirrors.fedoraproject.org/metalink?repo=epel-7&" in main
    assert "\nmetalink" not in main
    # The disabled debuginfo repository keeps its lines.
    assert section(epel, "epel-debuginfo") == section(EPEL, "epel-debuginfo")

    assert read(repos, "CentOS-SCLo-scl.repo") == CUSTOM_SCLO

    # Idempotent: nothing left to change, and the files stay as they are.
    before = {file: read(repos, file) for file in FILES}
    assert run_playbook(venv, repos, tmp_path) == 0
    assert {file: read(repos, file) for file in FILES} == before
