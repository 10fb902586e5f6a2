#!/usr/bin/env python3
"""Where the work of a request goes: wsgate fastcgi next to mod_wsgi daemon mode, in counts.

The set-ups are run.py's (the same Apache, the same Django view, 2 processes x 4 threads),
but nothing here is a timing: every figure is a count over a fixed number of requests,
divided by that number. Most of them do not depend on what else the machine is doing;
context switches and futex calls under 16 clients do, and vary from run to run.

  counts     context switches (/proc), system calls by name (the kernel's syscall
             tracepoints through `perf stat`, which unlike strace do not slow the calls)
             and how often a thread takes the GIL back (a uprobe on PyEval_RestoreThread)
             in the application's processes, and Apache's system calls, per request, with
             1 and 16 HTTP/1.1 keep-alive clients (h2load --h1 -n); and how the answers and
             the kept connections spread over the two application processes
  callgrind  user-space instructions per request of the application's processes and of
             Apache's children, everything under valgrind's callgrind, one client; from two
             runs that differ only in the number of requests, so that start-up and shutdown
             cancel out; once with the Django view and once with a three-line WSGI
             application, which leaves the gateway's own cost
  cprofile   cProfile of every request thread of wsgate's workers over a fixed number of
             requests from one client, grouped into the application, reading FastCGI, the
             environ, the answer, and the worker's own machinery

Run as root (backends run as www-data; perf probes), with the project's venv; needs
h2load (nghttp2-client), perf (linux-perf) and valgrind besides what run.py installs.
Prints the figures as JSON (--json also writes them to a file); server/README.md is left alone.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONCURRENCY = (1, 16)
PARTS = ("counts", "callgrind", "cprofile")
LABELS = {
    "plain": "wsgate fastcgi (2x4)",
    "reuse": "wsgate fastcgi (2x4), enablereuse=on",
    "mod_wsgi": "mod_wsgi daemon (2x4)",
}
BARE_APP = """\
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "14")])
    return [b"Hello, world!\\n"]
"""


# --------------------------------------------------------------------------- in the backend


def shim(out_dir: str, argv: list[str]) -> int:
    """Run `wsgate ARGV` with its request threads under cProfile, from SIGUSR2 until SIGUSR1.

    A thread profiles only inside Worker._serve_one, and saves from there: a profile
    may only be stopped by its own thread.
    """
    import cProfile

    from wsgate import cli, worker

    finished = []
    profiling, saving = threading.Event(), threading.Event()
    local = threading.local()
    serve_one = worker.Worker._serve_one
    install_signals = worker.Worker.install_signals

    def profiled_serve_one(self, index):
        if not profiling.is_set():
            return serve_one(self, index)
        if not hasattr(local, "profile"):
            local.profile = cProfile.Profile()
        local.profile.enable()
        try:
            serve_one(self, index)
        finally:
            local.profile.disable()
        if saving.is_set():
            finished.append(local.profile)
            threading.Event().wait()  # the measurement is over: this thread serves no more

    def save(self):
        saving.set()
        # One byte wakes one waiting thread; twice as many, since a thread woken before it
        # profiled takes one and only then starts its profile.
        os.write(self.queue_w, b"." * (2 * self.threads))
        deadline = time.monotonic() + 20
        while len(finished) < self.threads and time.monotonic() < deadline:
            time.sleep(0.05)
        pstats.Stats(*finished).dump_stats(os.path.join(out_dir, "worker-%d.pstats" % os.getpid()))

    def installed_signals(self):
        install_signals(self)
        signal.signal(signal.SIGUSR2, lambda *_: profiling.set())
        signal.signal(signal.SIGUSR1, lambda *_: threading.Thread(target=save, args=(self,), daemon=True).start())

    worker.Worker._serve_one = profiled_serve_one
    worker.Worker.install_signals = installed_signals
    return cli.main(argv)


# --------------------------------------------------------------------------- load and counters


def load_command(port: int, view: str, requests: int, concurrency: int) -> list[str]:
    """A fixed number of HTTP/1.1 keep-alive requests (as wrk makes them, but counted)."""
    return ["h2load", "--h1", "-t1", f"-c{concurrency}", f"-n{requests}", f"http://127.0.0.1:{port}{view}"]


def check_load(output: str, requests: int) -> None:
    m = re.search(r"status codes: (\d+) 2xx", output)
    if not m or int(m.group(1)) != requests:
        raise RuntimeError(f"the load did not get {requests} 2xx answers:\n{output}")


def load(port: int, view: str, requests: int, concurrency: int = 1) -> None:
    out = subprocess.run(load_command(port, view, requests, concurrency), capture_output=True, text=True, timeout=900)
    check_load(out.stdout, requests)


def switches(pids) -> Counter:
    """Voluntary and involuntary context switches so far of every thread of these processes."""
    total = Counter()
    for pid in pids:
        for task in os.listdir(f"/proc/{pid}/task"):
            for line in Path(f"/proc/{pid}/task/{task}/status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    name, value = line.split(":")
                    total[name.split("_")[0]] += int(value)
    return total


def sockets(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


def threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


# Every syscall tracepoint on Apache's 2 x 34 threads would need too many perf file descriptors.
APACHE_SYSCALLS = (
    "read write readv writev pread64 sendfile64 recvfrom sendto recvmsg sendmsg socket connect accept4 "
    "close shutdown fcntl ioctl poll ppoll epoll_wait epoll_pwait epoll_ctl futex setsockopt getsockopt "
    "getsockname getpeername newfstatat openat lseek mmap munmap brk madvise gettid getpid times "
    "rt_sigprocmask semop sched_yield clock_nanosleep pselect6 wait4 select"
).split()


# Where a thread takes the GIL back after a blocking call, or takes it to enter Python from C.
GIL_ENTRIES = {
    "gil_restore": "PyEval_RestoreThread",
    "gil_acquire": "PyEval_AcquireThread",
    "gil_ensure": "PyGILState_Ensure",
}


def add_gil_probes(pid: int) -> str:
    """uprobes on the GIL entry points of the interpreter process pid runs; returns the events."""
    maps = Path(f"/proc/{pid}/maps").read_text().split()
    interpreter = next((w for w in maps if "/libpython3" in w), os.readlink(f"/proc/{pid}/exe"))
    for event, function in GIL_ENTRIES.items():
        subprocess.run(["perf", "probe", "-q", "-x", interpreter, "-a", f"wsgatebench:{event}={function}"], check=True)
    return ",".join(f"wsgatebench:{event}" for event in GIL_ENTRIES)


def remove_gil_probes() -> None:
    subprocess.run(["perf", "probe", "-q", "-d", "wsgatebench:*"], capture_output=True, check=False)


def perf_stat(groups: dict[str, list[int]], events: dict[str, str], command: list[str], out_dir: Path) -> tuple:
    """Run command under `perf stat`, counting events[name] in the processes of groups[name].

    Returns its output and {name: {pid: Counter(event: count)}}; syscall events are named by the syscall.
    """
    files = {name: out_dir / f"perf-{name}.txt" for name in groups}
    process_of = {}
    for name, pids in groups.items():
        process_of.update({int(t): pid for pid in pids for t in os.listdir(f"/proc/{pid}/task")})
        counting = ["-e", events[name], "-p", ",".join(map(str, pids))]
        command = ["perf", "stat", "--per-thread", "-x,", "-o", str(files[name]), *counting, "--", *command]
    output = subprocess.run(command, check=True, timeout=1800, capture_output=True, text=True).stdout
    result = {}
    for name, path in files.items():
        counts = {pid: Counter() for pid in groups[name]}
        for line in path.read_text().splitlines():
            fields = line.split(",")
            if len(fields) > 3 and fields[1].isdigit():
                pid = process_of[int(fields[0].rsplit("-", 1)[1])]
                event = fields[3].replace("syscalls:sys_enter_", "").replace("wsgatebench:", "")
                counts[pid][event] += int(fields[1])
        result[name] = counts
    return output, result


# --------------------------------------------------------------------------- callgrind


def _named(table: dict, text: str) -> str:
    """Callgrind's name compression: "(7) name" defines 7, "(7)" refers to it."""
    m = re.match(r"\((\d+)\)\s*(.*)", text)
    if not m:
        return text
    if m.group(2):
        table[m.group(1)] = m.group(2)
    return table.get(m.group(1), "?")


def read_callgrind(path: Path) -> tuple[int, Counter]:
    """Total instructions of a callgrind output file, and self instructions by shared object."""
    objects, by_object = {}, Counter()
    obj = "?"
    total = 0
    inclusive_next = False
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("ob="):
            obj = _named(objects, line[3:])
        elif line.startswith("cob="):
            _named(objects, line[4:])
        elif line.startswith("calls="):
            inclusive_next = True  # the next cost line is the callee's, not this function's
        elif line[:1].isdigit() or line[:1] in "+-*":
            if inclusive_next:
                inclusive_next = False
                continue
            fields = line.split()
            if len(fields) > 1:
                by_object[Path(obj).name] += int(fields[1])
        elif line.startswith(("summary:", "totals:")):
            total = int(line.split()[1])
    return total, by_object


def final_counts(out_dir: Path, pids) -> tuple[int, Counter]:
    """The sum of what callgrind wrote at the exit of these processes."""
    total, by_object = 0, Counter()
    for pid in pids:
        t, o = read_callgrind(out_dir / f"callgrind.out.{pid}")
        total += t
        by_object.update(o)
    return total, by_object


# --------------------------------------------------------------------------- cProfile report

WAITS = ("<method 'poll' of 'select.epoll' objects>", "<method 'poll' of 'select.poll' objects>")
# (group, functions whose inclusive time is in it, functions whose inclusive time is taken out)
GROUPS = (
    ("the application (Django)", [("testsite/wsgi.py", "application")], []),
    ("accepting the connection", [("wsgate/worker.py", "_accept")], []),
    ("reading and parsing FastCGI records", [("wsgate/connection.py", "receive")], []),
    (
        "building the environ",
        [("wsgate/environ.py", "fix_paths"), ("wsgate/environ.py", "add_wsgi_keys"), ("wsgate/log.py", "__init__")],
        [],
    ),
    (
        "start_response, encoding and sending the answer",
        [("wsgate/response.py", "run_app"), ("wsgate/connection.py", "end_request")],
        [("testsite/wsgi.py", "application")],
    ),
    (
        "epoll and connection bookkeeping",
        [("wsgate/worker.py", "_park"), ("wsgate/worker.py", "_close"), ("wsgate/worker.py", "_claim")],
        [],
    ),
)


def _kind(filename: str) -> str:
    if "/wsgate/" in filename:
        return "wsgate"
    if "/django/" in filename or "/testsite/" in filename:
        return "django"
    return "standard library"


def profile_report(stats: pstats.Stats, requests: int) -> dict:
    def inclusive(where, name):
        return sum(v[3] for (f, _, n), v in stats.stats.items() if n == name and f.endswith(where))

    total = sum(v[2] for v in stats.stats.values())
    waiting = sum(v[2] for (_, _, n), v in stats.stats.items() if n in WAITS)
    busy = total - waiting
    groups = {}
    for label, plus, minus in GROUPS:
        groups[label] = sum(inclusive(*k) for k in plus) - sum(inclusive(*k) for k in minus)
    groups["the rest: the thread's loop, locks, request bookkeeping"] = busy - sum(groups.values())
    calls = Counter()  # function calls (Python and built-in) by the code that made them
    from_wsgate = Counter()
    for (f, _, n), value in stats.stats.items():
        for (caller, _, _), counts in value[4].items():
            calls[_kind(caller)] += counts[1]
            if _kind(caller) == "wsgate":
                from_wsgate[f"{Path(f).name}:{n}"] += counts[1]
    own = sorted((v[2], v[1], f"{Path(f).name}:{n}") for (f, _, n), v in stats.stats.items() if n not in WAITS)[::-1]
    return {
        "requests": requests,
        "share of busy time": {k: round(v / busy, 4) for k, v in groups.items()},
        "calls per request, by caller": {k: v / requests for k, v in calls.most_common()},
        "calls per request made by wsgate's code": {k: v / requests for k, v in from_wsgate.most_common(12)},
        "top self time (share, calls per request)": [
            (name, round(t / busy, 4), n / requests) for t, n, name in own[:15]
        ],
    }


# --------------------------------------------------------------------------- set-ups


class Setup:
    """One of run.py's set-ups; optionally under a wrapper (valgrind), or under the cProfile shim."""

    def __init__(self, bench, key: str, workdir: Path, project=None, wrapper=(), shim_dir=None):
        self.bench, self.key, self.workdir = bench, key, workdir
        self.backend = None
        self.cleanup: list = []
        h = bench.h
        project = project or bench.project
        sockdir = h.make_dir(workdir / "sock", owned_by_run_user=True)
        if key == "mod_wsgi":
            modules, body = h.conf_mod_wsgi(bench.venv, project, sockdir, processes=2, threads=4)
        else:
            sock = sockdir / "app.sock"
            args = [*h.wsgate_argv(bench.venv, "fastcgi", project)[1:], "--bind", f"unix:{sock}"]
            args += ["--workers", "2", "--threads", "4"]
            if shim_dir is not None:
                argv = [bench.py(), str(bench.base / "counts.py"), "shim", str(shim_dir), "--", *args]
            else:
                argv = [*wrapper, bench.py(), "-m", "wsgate", *args]
            env = {**bench.env, "PYTHONPATH": str(project)}
            self.backend = h.Backend(argv, workdir / "backend.log", env=env, cwd=project)
            self.cleanup.append(self.backend.stop)
            h.wait_for_unix_socket(sock, 600, alive=self.backend.alive)
            modules, body = h.conf_proxy_fcgi(sock, variant="sethandler", reuse=key == "reuse", flush=False)
        self.apache = h.Apache(workdir / "apache", body, modules)
        self.cleanup.append(self.apache.stop)
        if wrapper:
            self._start_apache_under(list(wrapper))
        else:
            self.apache.start()

    def _start_apache_under(self, wrapper: list[str]) -> None:
        apache, h = self.apache, self.bench.h
        apache.conf_path.write_text(apache.conf)
        apache._out = open(apache.root / "logs" / "stdout.log", "ab")
        apache.proc = subprocess.Popen(
            [*wrapper, h.apache_binary(), "-f", str(apache.conf_path), "-DFOREGROUND"],
            stdin=subprocess.DEVNULL,
            stdout=apache._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"},
        )
        h.wait_for_tcp(apache.port, 600, alive=lambda: apache.proc.poll() is None)

    def app_pids(self) -> list[int]:
        if self.backend is not None:
            return [self.backend.pid, *self.bench.h.descendants(self.backend.pid)]
        # mod_wsgi's daemon processes: Apache's children with few threads (an MPM child has 33).
        return [p for p in self.bench.h.children(self.apache.pid) if threads(p) < 16]

    def workers(self) -> list[int]:
        return self.bench.h.children(self.backend.pid) if self.backend else self.app_pids()

    def apache_children(self) -> list[int]:
        return [p for p in self.bench.h.children(self.apache.pid) if threads(p) >= 16]

    def get(self, n: int, concurrency: int = 1) -> None:
        load(self.apache.port, self.bench.view, n, concurrency)

    def stop_and_wait(self, timeout: float = 600) -> None:
        """Stop gracefully and wait, so that processes under valgrind write their counts."""
        if self.backend is not None:
            self.backend.proc.send_signal(signal.SIGTERM)
            self.backend.proc.wait(timeout)
        else:
            # mod_wsgi's daemons first: stopping Apache may kill them before valgrind has written.
            daemons = self.app_pids()
            for pid in daemons:
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while not all(self._gone(pid) for pid in daemons):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mod_wsgi's daemons {daemons} did not stop")
                time.sleep(0.2)
        self.apache.proc.send_signal(signal.SIGWINCH)  # graceful-stop
        self.apache.proc.wait(timeout)

    def _gone(self, pid: int) -> bool:
        state = self.bench.h.proc_stat(pid)
        return state is None or state[0] == "Z"

    def stop(self) -> None:
        for fn in reversed(self.cleanup):
            try:
                fn()
            except Exception as exc:
                print(f"   cleanup: {exc}", flush=True)


class Bench:
    def __init__(self, args):
        sys.path.insert(0, str(HERE))
        import run

        self.args = args
        self.h = run.h
        self.h.ensure_system_packages(wsgi=True)
        tools = {"h2load": "nghttp2-client", "perf": "linux-perf", "valgrind": "valgrind"}
        missing = [package for tool, package in tools.items() if shutil.which(tool) is None]
        if missing:
            raise SystemExit(f"needs: apt-get install {' '.join(missing)}")
        self.view = run.VIEW
        self.run_bench = run.Bench(argparse.Namespace(keep=args.keep))
        self.base = self.run_bench.base
        self.venv, self.project, self.env = self.run_bench.venv, self.run_bench.project, self.run_bench.env
        self.py = self.run_bench.py
        shutil.copy2(Path(__file__), self.base / "counts.py")  # readable by the run user
        # The bare application takes the test site's place, so that both gateways find it as they do the site.
        self.bare_project = self.h.make_dir(self.base / "bare_app")
        self.h.make_dir(self.bare_project / "testsite")
        (self.bare_project / "testsite" / "__init__.py").write_text("")
        (self.bare_project / "testsite" / "wsgi.py").write_text(BARE_APP)
        subprocess.run(["chmod", "-R", "a+rX", str(self.base)], check=True)

    def outdir(self, name: str) -> Path:
        return self.h.make_dir(self.base / name, mode=0o777)

    # counts ---------------------------------------------------------------------------

    def counts(self, key: str) -> dict:
        setup = Setup(self, key, self.h.make_dir(self.base / f"counts-{key}"))
        apache_events = ",".join(["raw_syscalls:sys_enter", *(f"syscalls:sys_enter_{c}" for c in APACHE_SYSCALLS)])
        out = {}
        try:
            setup.get(300, 16)
            gil_events = add_gil_probes(setup.workers()[0])
            for conc in CONCURRENCY:
                n = self.args.requests
                groups = {"app": setup.app_pids(), "apache": setup.apache_children()}
                before = {name: switches(pids) for name, pids in groups.items()}
                output, counted = perf_stat(
                    groups,
                    {"app": f"raw_syscalls:sys_enter,syscalls:sys_enter_*,{gil_events}", "apache": apache_events},
                    load_command(setup.apache.port, self.view, n, conc),
                    setup.workdir,
                )
                check_load(output, n)
                row = {"requests": n}
                for name, pids in groups.items():
                    diff = switches(pids)
                    diff.subtract(before[name])
                    calls = sum(counted[name].values(), Counter())
                    total = calls.pop("raw_syscalls:sys_enter")
                    gil = {e: calls.pop(e) / n for e in GIL_ENTRIES if e in calls}
                    row[name] = {
                        "voluntary switches": diff["voluntary"] / n,
                        "involuntary switches": diff["nonvoluntary"] / n,
                        "syscalls": total / n,
                        "by syscall": {k: v / n for k, v in calls.most_common() if v / n >= 0.01},
                        **({"GIL taken": gil} if gil else {}),
                    }
                # Each answer goes out in one sendto (wsgate) or two writev (mod_wsgi): who served what.
                answers = [c["sendto"] + c["writev"] for pid, c in counted["app"].items() if pid in setup.workers()]
                row["share of answers per process"] = sorted(round(a / max(1, sum(answers)), 3) for a in answers)
                row["sockets per process after"] = sorted(sockets(p) for p in setup.workers())
                out[f"c={conc}"] = row
                print(f"   counts {LABELS[key]} c={conc}: {json.dumps(row)}", flush=True)
        finally:
            remove_gil_probes()
            setup.stop()
        return out

    # callgrind ---------------------------------------------------------------------------

    def callgrind(self, key: str, project: Path, tag: str) -> dict:
        """Two runs under callgrind that differ only in n more requests: the difference is theirs.

        (Counted at exit: callgrind_control cannot reach processes that valgrind followed into a fork.)
        """
        n = self.args.callgrind_requests
        runs = []
        for extra in (0, n):
            out_dir = self.outdir(f"callgrind-{key}-{tag}-{extra}")
            wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_dir}/callgrind.out.%p"]
            workdir = self.h.make_dir(self.base / f"cg-{key}-{tag}-{extra}")
            setup = Setup(self, key, workdir, project=project, wrapper=wrapper)
            try:
                setup.get(200)
                if extra:
                    setup.get(extra)
                groups = {"app": setup.app_pids(), "apache": setup.apache_children()}
                setup.stop_and_wait()
            finally:
                setup.stop()
            runs.append({name: final_counts(out_dir, pids) for name, pids in groups.items()})
        result = {"requests": n}
        for name in ("app", "apache"):
            (t0, o0), (t1, o1) = runs[0][name], runs[1][name]
            o1.subtract(o0)
            result[name] = {
                "instructions": (t1 - t0) / n,
                "by object": {o: c / n for o, c in o1.most_common(6)},
            }
        print(f"   callgrind {LABELS[key]}, {tag}: {json.dumps(result)}", flush=True)
        return result

    # cProfile ---------------------------------------------------------------------------

    def cprofile(self, key: str) -> dict:
        out_dir = self.outdir(f"cprofile-{key}")
        setup = Setup(self, key, self.h.make_dir(self.base / f"prof-{key}"), shim_dir=out_dir)
        n = self.args.profile_requests
        try:
            setup.get(300)
            workers = setup.workers()
            for pid in workers:
                os.kill(pid, signal.SIGUSR2)
            time.sleep(1)  # a thread starts profiling at its next piece of work
            setup.get(n)
            for pid in workers:
                os.kill(pid, signal.SIGUSR1)
            files = [out_dir / f"worker-{pid}.pstats" for pid in workers]
            deadline = time.monotonic() + 60
            while not all(f.exists() for f in files):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no profile from {workers}")
                time.sleep(0.2)
            time.sleep(0.5)
        finally:
            setup.stop()
        report = profile_report(pstats.Stats(*map(str, files)), n)
        print(f"   cProfile {LABELS[key]}: {json.dumps(report['share of busy time'])}", flush=True)
        return report


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["shim"]:
        return shim(argv[1], argv[3:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", nargs="*", choices=PARTS, default=list(PARTS))
    p.add_argument("--setups", nargs="*", choices=list(LABELS), default=list(LABELS))
    p.add_argument("--requests", type=int, default=5000, help="requests per concurrency for the counts (5000)")
    p.add_argument("--callgrind-requests", type=int, default=1000, help="requests counted under callgrind (1000)")
    p.add_argument("--profile-requests", type=int, default=3000, help="requests under cProfile (3000)")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args(argv)

    bench = Bench(args)
    results: dict = {"cores": os.cpu_count(), "load average at start": Path("/proc/loadavg").read_text().split()[:3]}
    try:
        if "counts" in args.parts:
            results["counts"] = {LABELS[k]: bench.counts(k) for k in args.setups}
        if "callgrind" in args.parts:
            results["callgrind"] = {
                LABELS[k]: {
                    "Django view": bench.callgrind(k, bench.project, "django"),
                    "bare WSGI application": bench.callgrind(k, bench.bare_project, "bare"),
                }
                for k in args.setups
            }
        if "cprofile" in args.parts:
            results["cprofile"] = {LABELS[k]: bench.cprofile(k) for k in args.setups if k != "mod_wsgi"}
    finally:
        bench.run_bench.cleanup()
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
