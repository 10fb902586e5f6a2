"""Helpers shared by the tests: child processes and polling."""

import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", "..", "src"))

# How long a test waits for what must happen: a bound on hanging, not a
# speed target. The suite runs beside the Molecule scenarios, where a
# process start can take seconds on a saturated machine.
PATIENCE = 60.0


def child_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSGATE_")}
    env["PYTHONPATH"] = os.pathsep.join([SRC, HERE])
    env.update(extra)
    return env


def wsgate_command(subcommand, *args, app="apps:application", python_flags=()):
    """The command line that starts `python -m wsgate SUBCOMMAND` on a test app."""
    app_args = ["--app", app] if app else []
    return [sys.executable, *python_flags, "-m", "wsgate", subcommand, *app_args, *args]


class Daemon:
    def __init__(self, tmp_path, args, name="d"):
        self.path = str(tmp_path / (name + ".sock"))
        self.log_path = tmp_path / (name + ".log")
        self.log_file = open(self.log_path, "wb")
        cmd = wsgate_command("fastcgi", "--bind", "unix:" + self.path, "--log-level", "info", *args)
        self.proc = subprocess.Popen(
            cmd, env=child_env(), stdout=self.log_file, stderr=subprocess.STDOUT, cwd=str(tmp_path)
        )
        from fcgiclient import wait_for_socket

        wait_for_socket(self.path, proc=self.proc)

    @property
    def log(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


def wait_until(predicate, timeout=PATIENCE, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def gone(pid):
    """Whether the process has exited and closed its files.

    A killed thread group's leader turns zombie while its other threads may
    still be exiting with the files open; an orphan may stay a zombie until
    its new parent reaps it.
    """
    try:
        with open("/proc/%d/stat" % pid) as handle:
            state = handle.read().rpartition(")")[2].split()[0]
        return state == "Z" and os.listdir("/proc/%d/task" % pid) == [str(pid)]
    except (FileNotFoundError, ProcessLookupError):
        return True
