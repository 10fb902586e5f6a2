"""Test containers only (molecule/shared/prepare.yml, tests/render): keeps
the bytecode of the modules Python imports from zip files, which it compiles
afresh on every import. Every Ansible module run is such an import: the
module and ansible.module_utils, zipped by the controller. Compiling them is
about a third of the CPU a module run costs its host, and the test suite runs
thousands of them side by side on two cores. The code is the same; only the
compiling is skipped. Root's processes only: the cache is root's alone, so
no other user can put code in it that root would run.
"""

import marshal
import os
import sys
import types
import zipimport

CACHE = os.environ.get("ZIPIMPORT_BYTECODE_CACHE", "/var/cache/zipimport-bytecode")
_compile_source = zipimport._compile_source


def _retarget(code, pathname):
    """The cached code under this import's path (each run's zip has its own)."""
    consts = tuple(
        _retarget(const, pathname) if isinstance(const, types.CodeType) else const for const in code.co_consts
    )
    return code.replace(co_filename=pathname, co_consts=consts)


def _compile_and_keep(pathname, source, path):
    code = _compile_source(pathname, source)
    try:
        os.makedirs(CACHE, mode=0o700, exist_ok=True)
        partial = f"{path}.{os.getpid()}"
        with open(partial, "wb") as handle:
            marshal.dump(code, handle)
        os.replace(partial, path)
    except OSError:
        pass
    return code


def cached_compile(pathname, source):
    import hashlib

    # The bytecode and marshal's format change between Python versions.
    tag = sys.implementation.cache_tag.encode()[:16]
    data = source if isinstance(source, bytes) else source.encode()
    path = os.path.join(CACHE, hashlib.blake2b(data, digest_size=20, person=tag).hexdigest())
    try:
        with open(path, "rb") as handle:
            code = marshal.load(handle)
    except (OSError, EOFError, ValueError, TypeError):
        code = None
    if not isinstance(code, types.CodeType):
        return _compile_and_keep(pathname, source, path)
    return _retarget(code, pathname)


if os.geteuid() == 0:
    zipimport._compile_source = cached_compile
