"""tests/container_python: the test containers' Python keeps the bytecode of
what it imports from zip files (Ansible's module runs), and runs the same
code as without it."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

HOOK = Path(__file__).resolve().parent / "container_python"
MODULE = """
def outer():
    def inner():
        return 6 * 7
    return inner

ANSWER = outer()()
"""
# Imports the module from the zip, with the hook loaded as the .pth file
# loads it, and prints what the module and its code say.
PROBE = """
import json, sys, zipimport
import zipimport_bytecode_cache as hook
if sys.argv[2] == "forbid-compiling":
    def refuse(pathname, source):
        raise AssertionError("compiled again: " + pathname)
    hook._compile_source = refuse
sys.path.insert(0, sys.argv[1])
import zipped
print(json.dumps({
    "answer": zipped.ANSWER,
    "file": zipped.__file__,
    "inner_file": zipped.outer().__code__.co_filename,
    "hooked": zipimport._compile_source is hook.cached_compile,
}))
"""


def zipped(directory):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "code.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("zipped.py", MODULE)
    return path


def probe(archive, cache, mode="compile", python=sys.executable, hook=HOOK, user=None):
    command = [python, "-c", PROBE, str(archive), mode]
    if user:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    result = subprocess.run(
        command,
        env={
            **os.environ,
            "PYTHONPATH": str(hook),
            "PYTHONDONTWRITEBYTECODE": "1",
            "ZIPIMPORT_BYTECODE_CACHE": str(cache),
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def root():
    if os.geteuid() != 0:
        pytest.skip("the hook keeps bytecode for root only; run as root (CI does)")


def test_the_second_run_imports_the_kept_bytecode_under_its_own_path(root, tmp_path):
    cache = tmp_path / "cache"
    first = probe(zipped(tmp_path / "first"), cache)
    assert first["hooked"] and first["answer"] == 42
    assert len(list(cache.iterdir())) == 1
    # Another run's zip, elsewhere (as each module run's is): nothing is
    # compiled, and the code names the new path.
    second_zip = zipped(tmp_path / "second")
    second = probe(second_zip, cache, "forbid-compiling")
    assert second["answer"] == 42
    assert second["file"] == f"{second_zip}/zipped.py"
    assert second["inner_file"] == f"{second_zip}/zipped.py"


def test_a_damaged_entry_is_compiled_again_and_replaced(root, tmp_path):
    cache = tmp_path / "cache"
    archive = zipped(tmp_path / "code")
    probe(archive, cache)
    (entry,) = cache.iterdir()
    for damage in (b"", b"\x00not marshal", b"i\x07\x00\x00\x00"):  # the last is a valid marshalled int
        entry.write_bytes(damage)
        assert probe(archive, cache)["answer"] == 42
        assert probe(archive, cache, "forbid-compiling")["answer"] == 42


def test_the_cache_is_root_s_alone(root, tmp_path):
    cache = tmp_path / "cache"
    probe(zipped(tmp_path / "code"), cache)
    assert cache.stat().st_mode & 0o777 == 0o700


def test_other_users_processes_do_not_use_it(root):
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None or shutil.which("setpriv") is None:
        pytest.fail("this test needs /usr/bin/python3 and setpriv (util-linux)")
    # Readable by nobody: the checkout and pytest's tmp_path may not be.
    shared = Path(tempfile.mkdtemp(prefix="zipimport-cache-"))
    try:
        shared.chmod(0o755)
        shutil.copytree(HOOK, shared / "hook")
        archive = zipped(shared / "code")
        cache = shared / "cache"
        seen = probe(archive, cache, python=python, hook=shared / "hook", user=65534)
        assert seen["answer"] == 42 and not seen["hooked"]
        assert not cache.exists()
    finally:
        shutil.rmtree(shared)
