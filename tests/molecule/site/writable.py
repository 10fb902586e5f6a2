"""Which of the given paths a user other than root could change: the file,
or a directory on its way, owned by another user, writable by its group
(other than root's) or by everyone, or with an ACL. Symbolic links are
followed, and both the link's way and the target's count. Prints a JSON
object: path -> the reasons, for the paths that are not safe; names that
are not paths are looked up on PATH first.

    python3 writable.py PATH|NAME ...
"""

import json
import os
import shutil
import stat
import sys

ACL = "system.posix_acl_access"


def _reasons(path):
    info = os.lstat(path)
    found = []
    if info.st_uid != 0:
        found.append(f"{path} belongs to uid {info.st_uid}")
    if not stat.S_ISLNK(info.st_mode):
        if info.st_mode & stat.S_IWOTH and not (stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX):
            found.append(f"{path} is writable by everyone")
        if info.st_mode & stat.S_IWGRP and info.st_gid != 0:
            found.append(f"{path} is writable by gid {info.st_gid}")
        try:
            if os.getxattr(path, ACL, follow_symlinks=False):
                found.append(f"{path} has an ACL")
        except OSError:
            pass
    return found


def _ways(path):
    """Every path whose change would change what `path` names: each
    directory from / down, and each link followed on the way."""
    seen, todo = [], [os.path.abspath(path)]
    while todo:
        current = todo.pop()
        parts = current.split("/")
        for end in range(1, len(parts) + 1):
            step = "/".join(parts[:end]) or "/"
            if step in seen:
                continue
            seen.append(step)
            if os.path.islink(step):
                target = os.path.join(os.path.dirname(step), os.readlink(step))
                todo.append(os.path.normpath(os.path.join(target, *parts[end:])))
                break
    return seen


def check(name):
    path = name if name.startswith("/") else shutil.which(name)
    if path is None:
        return [f"{name} is not on PATH"]
    if not os.path.exists(path):
        return [f"{path} does not exist"]
    return [reason for step in _ways(path) for reason in _reasons(step)]


def main(names):
    unsafe = {name: reasons for name in names if (reasons := check(name))}
    print(json.dumps(unsafe, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
