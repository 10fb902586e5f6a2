"""Records what the plays run as root on each host: every program a task
starts (command, shell, script, pip, the interpreter of Ansible's own
modules), so that the verify tests can check that nothing root runs can be
changed by another user. Enabled by the scenarios' Ansible configuration;
writes one JSON line per task to the file ROOT_COMMANDS_LOG names, and
nothing without it."""

import json
import os
import shlex

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: root_commands
type: aggregate
short_description: record the programs tasks run as root
description: One JSON line per task run as root, in the file $ROOT_COMMANDS_LOG.
requirements: [ROOT_COMMANDS_LOG in the environment]
"""

# Modules that start a program named in their arguments.
RUNNERS = {"command", "shell", "script", "pip", "raw"}


def _short(action):
    return action.rsplit(".", 1)[-1]


def _programs(action, args):
    """The paths of the programs a task starts: absolute ones as they are,
    others by name (the verify test looks them up on the host)."""
    if action == "pip":
        venv = args.get("virtualenv")
        programs = [f"{venv}/bin/python"] if venv else [args.get("executable") or "pip3"]
        if venv and args.get("virtualenv_command"):
            programs.append(shlex.split(args["virtualenv_command"])[0])
        return programs
    if action == "script":
        executable = args.get("executable")
        return [executable] if executable else []
    argv = args.get("argv") or shlex.split(args.get("_raw_params") or args.get("cmd") or "")
    if not argv:
        return []
    if action == "shell":
        # A shell line: the programs it names by path, and its first word.
        return [argv[0]] + [word for word in argv[1:] if word.startswith("/")]
    # The program, and what it is handed to run (python script.py).
    return [argv[0]] + [word for word in argv[1:2] if word.startswith("/")]


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "root_commands"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._log = os.environ.get("ROOT_COMMANDS_LOG")

    def _as_root(self, result):
        fields = result._task_fields
        if fields.get("delegate_to"):
            return False
        if fields.get("become"):
            return (fields.get("become_user") or "root") == "root"
        user = fields.get("remote_user") or result._host.get_vars().get("ansible_user")
        return user == "root"

    def _record(self, result):
        if not self._log or not self._as_root(result):
            return
        action = _short(result._task_fields.get("action") or result._task.action)
        args = dict(result._task_fields.get("args") or {})
        invocation = (result._result or {}).get("invocation", {}).get("module_args") or {}
        args.update({key: value for key, value in invocation.items() if value is not None})
        # An expression left untemplated is a task that failed before it
        # started anything (an undefined variable): nothing ran.
        programs = _programs(action, args) if action in RUNNERS else []
        programs = [program for program in programs if "{{" not in str(program)]
        interpreter = (result._result or {}).get("ansible_facts", {}).get("discovered_interpreter_python")
        entry = {
            "host": result._host.get_name(),
            "task": result._task.get_name(),
            "action": action,
            "programs": [str(program) for program in programs if program],
            "interpreter": interpreter,
        }
        # One write of the whole line to a file opened for appending: plays
        # that run side by side (test_releases) never interleave their lines.
        fd = os.open(self._log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(entry) + "\n").encode())
        finally:
            os.close(fd)

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result)

    def v2_runner_item_on_ok(self, result):
        self._record(result)
