#!/usr/bin/env python3
"""Benchmark of wsgate behind Apache 2.4 against the usual Python peers, in one run.

Everything serves the same Django view (``/app/hello/`` of server/tests/django_project) behind
the same Apache (event MPM, 2 x 32 threads, keep-alive), loaded by ``wrk`` on 127.0.0.1:

  FastCGI daemons, 2 processes x 4 threads (8 request slots each), via mod_proxy_fcgi
  (``SetHandler "proxy:unix:...|fcgi://localhost/"``):
    wsgate fastcgi, the same with enablereuse=on, flup 1.0.3 prefork (single-threaded
    children, so 8 of them), fcgisgi 0.2.3 (2 processes sharing one socket, 4 threads each);
  mod_wsgi daemon mode, WSGIDaemonProcess processes=2 threads=4;
  CGI through mod_cgid: wsgate cgi, wsgiref.handlers.CGIHandler, wsgate relay (backend 2 x 4,
  started from the `python -S` relay script the README recommends), and two CGI floors:
  a `python -S` script that prints a fixed reply (what any Python CGI costs at least, the
  relay's yardstick), and a script that starts Python, imports the app and prints a reply.

Reports req/s, p50, p99, errors (socket errors + non-2xx), the peak summed RSS of Apache's
process tree and the backend's, sampled from /proc every 0.25 s, and for the daemons the
context switches of the application's processes per request (from /proc, all threads).  It builds its venv from
/usr/bin/python3 (the interpreter mod_wsgi embeds) in a cache directory, prints a table and the
target ratios, and writes the table into server/README.md between the bench markers.

With --variants it also measures the worker designs of bench/variants (rows next to wsgate
fastcgi's, not written into the README).

This is a measurement script, not a test: it exits 0 whether or not the targets are met
(use --strict to exit 1 when one is missed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))

import it_harness as h  # noqa: E402

README = HERE.parent / "README.md"
START_MARK = "<!-- bench:start -->"
END_MARK = "<!-- bench:end -->"
VIEW = h.MOUNT + "/hello/"
PROCESSES, THREADS = 2, 4

WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50": %d, "p90": %d, "p99": %d, "mean": %f, "max": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max))
end
"""


@dataclass
class Result:
    key: str
    label: str
    group: str
    connections: int
    rounds: list[dict] = field(default_factory=list)
    peak_rss_kb: int = 0
    peak_app_rss_kb: int = 0
    peak_procs: int = 0
    error: str | None = None
    note: str = ""

    def med(self, name: str) -> float:
        vals = [r[name] for r in self.rounds]
        return statistics.median(vals) if vals else float("nan")

    @property
    def rps(self) -> float:
        """Median over the rounds of successful (2xx) responses per second."""
        return self.med("ok_rps")

    @property
    def all_rps(self) -> float:
        return self.med("rps")

    @property
    def rps_range(self) -> str:
        vals = [r["ok_rps"] for r in self.rounds]
        if not vals:
            return ""
        digits = 0 if min(vals) >= 100 else 1
        return f"{min(vals):.{digits}f}\N{EN DASH}{max(vals):.{digits}f}"

    def _daemon_median(self, name: str) -> float | None:
        vals = [r[name] for r in self.rounds if name in r]
        return statistics.median(vals) if vals else None

    @property
    def switches(self) -> float | None:
        return self._daemon_median("switches_per_request")

    @property
    def cpu_us(self) -> float | None:
        return self._daemon_median("cpu_us_per_request")

    @property
    def low(self) -> float:
        return min(r["ok_rps"] for r in self.rounds)

    @property
    def high(self) -> float:
        return max(r["ok_rps"] for r in self.rounds)

    @property
    def p50_ms(self) -> float:
        return self.med("p50") / 1000.0

    @property
    def p99_ms(self) -> float:
        return self.med("p99") / 1000.0

    @property
    def errors(self) -> int:
        return sum(r["errors"] for r in self.rounds)

    @property
    def requests(self) -> int:
        return sum(r["requests"] for r in self.rounds)


# --------------------------------------------------------------------------- load


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def context_switches(pids) -> int:
    """Voluntary and involuntary context switches of every thread of these processes so far."""
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                text = Path(f"/proc/{pid}/task/{task}/status").read_text()
            except OSError:
                continue
            for line in text.splitlines():
                if "ctxt_switches:" in line:
                    total += int(line.split()[-1])
    return total


def cpu_seconds(pids) -> dict[int, float]:
    """User and system CPU time of each of these processes so far (all their threads)."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return out


def run_wrk(port: int, connections: int, duration: float, lua: Path, threads: int = 2) -> dict:
    cmd = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "30s",
        "-s",
        str(lua),
        f"http://127.0.0.1:{port}{VIEW}",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 90)
    m = re.search(r"^WRKJSON (.*)$", res.stdout, re.M)
    if not m:
        raise RuntimeError(f"wrk gave no result: {res.stdout}\n{res.stderr}")
    d = json.loads(m.group(1))
    seconds = d["duration_us"] / 1e6
    non2xx = 0
    m2 = re.search(r"Non-2xx or 3xx responses: (\d+)", res.stdout)
    if m2:
        non2xx = int(m2.group(1))
    d["rps"] = d["requests"] / seconds if seconds else 0.0
    d["non2xx"] = max(d["status"], non2xx)
    d["errors"] = d["connect"] + d["read"] + d["write"] + d["timeout"] + d["non2xx"]
    d["ok_rps"] = max(0, d["requests"] - d["non2xx"]) / seconds if seconds else 0.0
    d["cmd"] = " ".join(cmd)
    return d


def warm_up(port: int, count: int) -> None:
    for _ in range(count):
        try:
            h.request(port, "GET", VIEW, timeout=60)
        except OSError:
            time.sleep(0.2)


def check_view(port: int, attempts: int = 5) -> None:
    # A peer that drops some requests (fcgisgi closes before Apache has sent
    # the empty STDIN record) still gets measured; its failures show up as
    # errors in the table instead of removing the row.
    for _ in range(attempts):
        r = h.request(port, "GET", VIEW, timeout=60)
        if r.status == 200 and b"Hello, world!" in r.body:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the view did not answer properly in {attempts} attempts: {r}")


def prepare(res: Result, apache: h.Apache, args, lua: Path, cgi: bool) -> None:
    check_view(apache.port)
    warm_up(apache.port, 4 if cgi else 200)
    if not cgi:
        run_wrk(apache.port, res.connections, args.warmup, lua)
    if res.key.startswith("fcgid"):
        # mod_fcgid starts its processes one request at a time, and throttles that
        # (FcgidSpawnScoreUpLimit): load until it has started what it will.
        for _ in range(args.fcgid_warmups):
            run_wrk(apache.port, res.connections, args.warmup, lua)


def measure_round(res: Result, apache: h.Apache, app_pids, args, lua: Path) -> None:
    def pids():
        return set(apache.process_tree()) | set(app_pids())

    def app_only():
        return {p for p in pids() if not h.cmdline(p).startswith(str(h.apache_binary()))}

    app_sampler = h.RssSampler(app_only)
    daemons = res.group != "cgi"
    if daemons:
        before = app_only()
        switches, cpu = context_switches(before), cpu_seconds(before)
    with h.RssSampler(pids) as sampler, app_sampler:
        duration = args.cgi_duration if res.group == "cgi" else args.duration
        res.rounds.append(run_wrk(apache.port, res.connections, duration, lua))
    if daemons:
        last = res.rounds[-1]
        after = before | app_only()
        requests = max(1, last["requests"])
        last["switches_per_request"] = (context_switches(after) - switches) / requests
        used = sum(seconds - cpu.get(pid, 0.0) for pid, seconds in cpu_seconds(after).items())
        last["cpu_us_per_request"] = used * 1e6 / requests
    res.peak_rss_kb = max(res.peak_rss_kb, sampler.peak_kb)
    res.peak_app_rss_kb = max(res.peak_app_rss_kb, app_sampler.peak_kb)
    res.peak_procs = max(res.peak_procs, sampler.peak_count)


def top_error(apache: h.Apache) -> str:
    """The most frequent error message in Apache's error log (timestamps and clients removed)."""
    counts: dict[str, int] = {}
    for line in apache.read_error_log().splitlines():
        if ":error]" not in line:
            continue
        msg = re.sub(r"^(\[[^\]]*\] ?)+", "", line)
        msg = re.sub(r"\[client [^\]]*\] ?", "", msg)
        msg = re.sub(r"\d+\.\d+\.\d+\.\d+:\d+|:\d{4,5}\b", "", msg).strip()
        counts[msg] = counts.get(msg, 0) + 1
    if not counts:
        return ""
    msg, n = max(counts.items(), key=lambda kv: kv[1])
    return f"Apache logged {n}x: {msg[:200]}"


# --------------------------------------------------------------------------- set-ups


class Bench:
    def __init__(self, args):
        self.args = args
        self.base = h.make_base("wsgate-bench-")
        print(f"work dir {self.base}", flush=True)
        self.venv = h.build_venv(h.cache_root() / "bench-venv", self.requirements())
        self.project = h.prepare_project(self.base, self.venv)
        self.peers = self.base / "peers"
        shutil.copytree(HERE / "peers", self.peers, ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(["chmod", "-R", "a+rX", str(self.peers)], check=True)
        self.lua = self.base / "report.lua"
        self.lua.write_text(WRK_LUA)
        self.env = h.app_env(self.project, {"PYTHONPATH": str(self.project)})
        self.results: list[Result] = []
        self.pending: list = []
        self.floor: list[float] = []

    @staticmethod
    def requirements() -> list[str]:
        lines = (HERE / "requirements.txt").read_text().splitlines()
        return [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()]

    def py(self) -> str:
        return str(self.venv / "bin" / "python")

    def run_case(self, key: str, label: str, group: str, setup) -> None:
        """Register a setup; run_group() measures the setups of a group with interleaved rounds."""
        self.pending.append((key, label, group, setup))

    def run_group(self, floor: bool = False) -> None:
        """Start every registered setup (each its own Apache and backend), then run the rounds
        round-robin across them, so that drift in the machine's load hits all of them alike.
        With floor, each round also measures the view's CPU cost in-process, without a server."""
        cases, self.pending = self.pending, []
        live = []
        cleanup: list = []
        for key, label, group, setup in cases:
            cgi = group == "cgi"
            conns = self.args.cgi_connections if cgi else self.args.connections
            res = Result(key, label, group, conns)
            if self.args.only and key not in self.args.only:
                continue
            self.results.append(res)
            workdir = h.make_dir(self.base / key)
            print(f"== start {label}", flush=True)
            try:
                apache, app_pids, note = setup(workdir, cleanup)
                res.note = note
                prepare(res, apache, self.args, self.lua, cgi)
                live.append((res, apache, app_pids, workdir))
            except Exception as exc:  # keep going with the other cases
                self._failed(res, exc, workdir)
        try:
            self._rounds(live, floor)
            for res, apache, _, _ in live:
                if res.errors:
                    res.note = top_error(apache)
        finally:
            for fn in reversed(cleanup):
                try:
                    fn()
                except Exception as exc:
                    print(f"   cleanup: {exc}", flush=True)
        self._summary(live)

    def measure_floor(self) -> float:
        """CPU µs per call of the view in-process in a loop (peers/inprocess_floor.py)."""
        out = subprocess.run(
            [self.py(), str(self.peers / "inprocess_floor.py"), str(self.args.floor_calls)],
            env={"PATH": "/usr/bin:/bin", **self.env},
            cwd=str(self.project),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return float(out.split()[-1])

    def _rounds(self, live, floor=False) -> None:
        if True:
            for rnd in range(self.args.rounds):
                if floor and (not self.args.only or "floor" in self.args.only):
                    self.floor.append(self.measure_floor())
                    print(f"   round {rnd + 1} in-process floor: {self.floor[-1]:.1f} us CPU/request", flush=True)
                for res, apache, app_pids, workdir in live:
                    if res.error:
                        continue
                    try:
                        measure_round(res, apache, app_pids, self.args, self.lua)
                        last = res.rounds[-1]
                        print(
                            f"   round {rnd + 1} {res.label} (c={res.connections}): "
                            f"{last['ok_rps']:.1f} ok req/s, p50 {last['p50'] / 1000:.1f} ms, "
                            f"p99 {last['p99'] / 1000:.1f} ms, errors {last['errors']}",
                            flush=True,
                        )
                    except Exception as exc:
                        self._failed(res, exc, workdir)

    def _summary(self, live) -> None:
        for res, *_ in live:
            if res.error or not res.rounds:
                continue
            print(
                f"== {res.label}: {res.rps:9.1f} ok req/s  p50 {res.p50_ms:8.1f} ms  p99 {res.p99_ms:8.1f} ms  "
                f"errors {res.errors}  peak RSS {res.peak_rss_kb / 1024:.0f} MB "
                f"(app {res.peak_app_rss_kb / 1024:.0f} MB)"
                + (
                    f"  {res.switches:.1f} context switches/request, {res.cpu_us:.0f} us CPU/request"
                    if res.switches is not None
                    else ""
                ),
                flush=True,
            )
            if res.errors:
                kinds = ("connect", "read", "write", "timeout", "non2xx")
                print(
                    "   errors by kind: " + ", ".join(f"{k} {sum(r[k] for r in res.rounds)}" for k in kinds), flush=True
                )

    @staticmethod
    def _failed(res: Result, exc: Exception, workdir: Path) -> None:
        res.error = f"{type(exc).__name__}: {exc}"
        print(f"   FAILED {res.label}: {res.error[:2000]}", flush=True)
        for p in workdir.rglob("*.log"):
            tail = p.read_text(errors="replace")[-1500:]
            if tail.strip():
                print(f"   --- {p.name}:\n{tail}", flush=True)

    # FastCGI daemons ------------------------------------------------------

    def fastcgi_case(self, key, label, argv_for_sock, reuse=False, conf=None, env=None):
        """A daemon on a unix socket behind Apache; conf(sock) gives Apache's (modules, body),
        by default mod_proxy_fcgi through SetHandler."""

        def setup(workdir, cleanup):
            sockdir = h.make_dir(workdir / "sock", owned_by_run_user=True)
            sock = sockdir / "app.sock"
            backend = h.Backend(
                argv_for_sock(sock), workdir / "backend.log", env={**self.env, **(env or {})}, cwd=self.project
            )
            cleanup.append(backend.stop)
            h.wait_for_unix_socket(sock, 60, alive=backend.alive)
            if conf is None:
                modules, body = h.conf_proxy_fcgi(sock, variant="sethandler", reuse=reuse, flush=False)
            else:
                modules, body = conf(sock)
            apache = h.Apache(workdir / "apache", body, modules)
            cleanup.append(apache.stop)
            apache.start()
            return apache, lambda: [backend.pid, *h.descendants(backend.pid)], ""

        return self.run_case(key, label, "fastcgi", setup)

    # uWSGI and gunicorn: the servers users pick instead -------------------------

    def uwsgi_argv(self, sock, protocol):
        """uWSGI as its docs run a threaded Django: master, processes x threads, thunder-lock."""
        return [
            str(self.venv / "bin" / "uwsgi"),
            "--fastcgi-socket" if protocol == "fastcgi" else "--socket",
            str(sock),
            "--chmod-socket=660",
            "--master",
            "--processes",
            str(PROCESSES),
            "--threads",
            str(THREADS),
            "--thunder-lock",
            "--pythonpath",
            str(self.project),
            "--module",
            h.APP_SPEC,
            "--need-app",
            "--disable-logging",
            "--die-on-term",
        ]

    @staticmethod
    def conf_uwsgi(sock):
        # mod_proxy_uwsgi: PATH_INFO is what follows the target, SCRIPT_NAME the rest.
        body = f"""ProxyPass "{h.MOUNT}" "unix:{sock}|uwsgi://localhost" retry=0 timeout=120
"""
        return ["proxy", "proxy_uwsgi"], body

    def gunicorn_argv(self, sock):
        return [
            str(self.venv / "bin" / "gunicorn"),
            "--worker-class",
            "gthread",
            "--workers",
            str(PROCESSES),
            "--threads",
            str(THREADS),
            "--bind",
            f"unix:{sock}",
            "--pythonpath",
            str(self.project),
            "--log-level",
            "warning",
            h.APP_SPEC,
        ]

    @staticmethod
    def conf_proxy_http(sock):
        # gunicorn keeps an idle connection 2 s (--keep-alive); Apache's ttl=1 drops
        # its kept ones before that, so Apache never sends on one gunicorn is closing.
        target = f"unix:{sock}|http://localhost{h.MOUNT}/"
        body = f"""ProxyPass "{h.MOUNT}/" "{target}" retry=0 timeout=120 enablereuse=on ttl=1
"""
        return ["proxy", "proxy_http"], body

    def peer_cases(self):
        label = f"uWSGI {self.peer_version('pyuwsgi')} fastcgi ({PROCESSES}x{THREADS})"
        self.fastcgi_case(
            "uwsgi_fastcgi",
            label,
            lambda sock: self.uwsgi_argv(sock, "fastcgi"),
        )
        self.fastcgi_case(
            "uwsgi_fastcgi_reuse",
            f"{label}, enablereuse=on",
            lambda sock: self.uwsgi_argv(sock, "fastcgi"),
            reuse=True,
        )
        self.fastcgi_case(
            "uwsgi_uwsgi",
            f"uWSGI {self.peer_version('pyuwsgi')} uwsgi protocol, mod_proxy_uwsgi ({PROCESSES}x{THREADS})",
            lambda sock: self.uwsgi_argv(sock, "uwsgi"),
            conf=self.conf_uwsgi,
        )
        self.fastcgi_case(
            "gunicorn",
            f"gunicorn {self.peer_version('gunicorn')} gthread, mod_proxy_http ({PROCESSES}x{THREADS})",
            self.gunicorn_argv,
            conf=self.conf_proxy_http,
            env={"SCRIPT_NAME": h.MOUNT},
        )

    def peer_version(self, name):
        if not hasattr(self, "_versions"):
            code = (
                "import importlib.metadata as m, json\n"
                "print(json.dumps({n: m.version(n) for n in ('pyuwsgi', 'gunicorn')}))"
            )
            out = subprocess.run([self.py(), "-c", code], capture_output=True, text=True, check=True).stdout
            self._versions = json.loads(out)
        return self._versions[name]

    def wsgate_fastcgi_argv(self, sock):
        return h.wsgate_argv(
            self.venv,
            "fastcgi",
            self.project,
            "--bind",
            f"unix:{sock}",
            "--workers",
            str(PROCESSES),
            "--threads",
            str(THREADS),
        )

    def leader_follower_argv(self, sock):
        variants = self.base / "variants"
        if not variants.exists():
            # Like the peers: somewhere the unprivileged run user can read.
            shutil.copytree(HERE / "variants", variants, ignore=shutil.ignore_patterns("__pycache__"))
            subprocess.run(["chmod", "-R", "a+rX", str(variants)], check=True)
        return [self.py(), str(variants / "leader_follower.py"), *self.wsgate_fastcgi_argv(sock)[1:]]

    def variant_cases(self):
        label = f"wsgate fastcgi, leader/follower accept ({PROCESSES}x{THREADS})"
        self.fastcgi_case("wsgate_fastcgi_lf", label, self.leader_follower_argv)
        self.fastcgi_case("wsgate_fastcgi_lf_reuse", f"{label}, enablereuse=on", self.leader_follower_argv, reuse=True)

    def mod_wsgi_case(self):
        def setup(workdir, cleanup):
            sockdir = h.make_dir(workdir / "wsgi-sock", owned_by_run_user=True)
            modules, body = h.conf_mod_wsgi(self.venv, self.project, sockdir, processes=PROCESSES, threads=THREADS)
            apache = h.Apache(workdir / "apache", body, modules)
            cleanup.append(apache.stop)
            apache.start()
            return apache, lambda: [], ""

        return self.run_case("mod_wsgi", f"mod_wsgi daemon ({PROCESSES}x{THREADS})", "fastcgi", setup)

    def fcgid_case(self, key, label, max_processes):
        """mod_fcgid spawning `wsgate fcgid`, configured as the wsgate role's site-fcgid.conf
        does (mod_fcgid's defaults for everything the role does not set)."""

        def setup(workdir, cleanup):
            cgidir = h.make_dir(workdir / "cgi-bin")
            wrapper = h.write_wrapper(cgidir / "app.fcgi", h.wsgate_argv(self.venv, "fcgid", self.project), self.env)
            ipc = h.make_dir(workdir / "fcgid", owned_by_run_user=True)
            body = f"""FcgidIPCDir "{ipc}"
FcgidProcessTableFile "{ipc}/fcgid_shm"
Alias "{h.MOUNT}" "{wrapper}"
<Directory "{cgidir}">
    Options +ExecCGI
    <Files "{wrapper.name}">
        SetHandler fcgid-script
        Require all granted
    </Files>
</Directory>
FcgidPassHeader Authorization
FcgidMaxRequestLen 1073741824
FcgidMaxRequestsPerProcess 0
FcgidMaxProcessesPerClass {max_processes}
FcgidIdleTimeout 300
FcgidIOTimeout 60
"""
            apache = h.Apache(workdir / "apache", body, ["fcgid"])
            cleanup.append(apache.stop)
            apache.start()
            return apache, lambda: [], ""

        return self.run_case(key, label, "fastcgi", setup)

    # CGI family ---------------------------------------------------------------

    def relay_script(self, path: Path, args: list[str]) -> Path:
        """The relay script server/README.md recommends: python -S, wsgate's directory on sys.path."""
        where = subprocess.run(
            [self.py(), "-c", "import os, wsgate; print(os.path.dirname(os.path.dirname(wsgate.__file__)))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        lines = [
            f"#!{self.py()} -S",
            "import os",
            "import sys",
            "",
            f"sys.path.insert(0, {where!r})",
            *(f"os.environ.setdefault({k!r}, {v!r})" for k, v in self.env.items()),
            "from wsgate.cli import main",
            "",
            f"sys.exit(main({['relay', *args]!r}))",
        ]
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o755)
        return path

    def bare_floor_script(self, path: Path) -> Path:
        """What a Python CGI costs at least: the interpreter started like the relay script, a fixed reply."""
        path.write_text(
            f"#!{self.py()} -S\n"
            "import sys\n\n"
            'sys.stdout.buffer.write(b"Status: 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\nHello, world!\\n")\n'
        )
        path.chmod(0o755)
        return path

    def cgi_case(self, key, label, argv, relay_sock: Path | None = None, relay_args=None, script=None):
        def setup(workdir, cleanup):
            cgidir = h.make_dir(workdir / "cgi-bin")
            if script is not None:
                script_path = script(cgidir / "app.cgi")
            elif relay_args is not None:
                script_path = self.relay_script(cgidir / "app.cgi", relay_args(workdir))
            else:
                script_path = h.write_wrapper(cgidir / "app.cgi", argv(workdir), self.env)
            modules, body = h.conf_cgid(script_path)
            apache = h.Apache(workdir / "apache", body, modules)
            cleanup.append(apache.stop)
            apache.start()
            extra = lambda: []  # noqa: E731
            if relay_sock is not None:
                cleanup.append(lambda: h.kill_pids(h.pids_with_cmdline(str(relay_sock))))

                def extra():
                    return h.pids_with_cmdline(str(relay_sock))

            return apache, extra, ""

        return self.run_case(key, label, "cgi", setup)

    # ------------------------------------------------------------------------------

    def run_all(self) -> None:
        self.fastcgi_case("wsgate_fastcgi", f"wsgate fastcgi ({PROCESSES}x{THREADS})", self.wsgate_fastcgi_argv)
        self.fastcgi_case(
            "wsgate_fastcgi_reuse",
            f"wsgate fastcgi ({PROCESSES}x{THREADS}), enablereuse=on",
            self.wsgate_fastcgi_argv,
            reuse=True,
        )
        if self.args.variants:
            self.variant_cases()
        self.fastcgi_case(
            "flup",
            f"flup 1.0.3 prefork ({PROCESSES * THREADS}x1)",
            lambda sock: [self.py(), str(self.peers / "flup_prefork.py"), str(sock), str(PROCESSES * THREADS)],
        )
        self.fastcgi_case(
            "fcgisgi",
            f"fcgisgi 0.2.3 ({PROCESSES}x{THREADS})",
            lambda sock: [self.py(), str(self.peers / "fcgisgi_prefork.py"), str(sock), str(PROCESSES), str(THREADS)],
        )
        self.mod_wsgi_case()
        self.peer_cases()
        connections = self.args.connections
        self.fcgid_case(
            "fcgid",
            f"wsgate fcgid, FcgidMaxProcessesPerClass 8 (the role's default), {connections} clients",
            8,
        )
        self.fcgid_case(
            "fcgid_matched",
            f"wsgate fcgid, FcgidMaxProcessesPerClass {connections} (one per client)",
            connections,
        )
        self.run_group(floor=True)

        def relay_args(workdir):
            relaydir = h.make_dir(workdir / "relay", owned_by_run_user=True)
            return h.wsgate_argv(
                self.venv,
                "relay",
                self.project,
                "--socket",
                str(relaydir / "relay.sock"),
                "--workers",
                str(PROCESSES),
                "--threads",
                str(THREADS),
                "--idle-timeout",
                "600",
            )[2:]

        relay_sock = self.base / "wsgate_relay" / "relay" / "relay.sock"
        self.cgi_case(
            "wsgate_relay",
            f"wsgate relay (backend {PROCESSES}x{THREADS}, python -S script)",
            None,
            relay_sock=relay_sock,
            relay_args=relay_args,
        )
        self.cgi_case("wsgate_cgi", "wsgate cgi", lambda wd: h.wsgate_argv(self.venv, "cgi", self.project))
        self.cgi_case("wsgiref_cgi", "wsgiref CGIHandler", lambda wd: [self.py(), str(self.peers / "wsgiref_cgi.py")])
        self.cgi_case(
            "cgi_floor_bare",
            "CGI floor (python -S script, fixed reply)",
            None,
            script=lambda path: self.bare_floor_script(path),
        )
        self.cgi_case(
            "cgi_floor",
            "CGI floor (python + import app, no request)",
            lambda wd: [self.py(), str(self.peers / "cgi_floor.py")],
        )
        self.cgi_case(
            "cgi_floor_request",
            "CGI floor + the app's own request work",
            lambda wd: [self.py(), str(self.peers / "cgi_floor_request.py")],
        )
        self.run_group()
        self.startup = self.measure_startup()

    def measure_startup(self, runs: int = 15) -> dict:
        """hyperfine-like: wall time of `python -c pass` and of importing the app."""
        out = {}
        if self.args.only and "startup" not in self.args.only and "cgi_floor" not in self.args.only:
            return out
        cmds = {
            "python -c pass": [self.py(), "-c", "pass"],
            "python -c 'import testsite.wsgi'": [self.py(), "-c", "import testsite.wsgi"],
            "wsgate --help (CLI start)": [str(self.venv / "bin" / "wsgate"), "--help"],
        }
        for label, cmd in cmds.items():
            times = []
            for i in range(runs + 2):
                t0 = time.perf_counter()
                subprocess.run(
                    cmd,
                    env=self.env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    cwd=str(self.project),
                    check=False,
                )
                if i >= 2:
                    times.append(time.perf_counter() - t0)
            out[label] = (statistics.mean(times) * 1000, statistics.stdev(times) * 1000)
        return out

    def cleanup(self) -> None:
        if not self.args.keep:
            shutil.rmtree(self.base, ignore_errors=True)


# --------------------------------------------------------------------------- report


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    apache_v = subprocess.run([h.apache_binary() or "apache2", "-v"], capture_output=True, text=True).stdout
    apache_v = apache_v.splitlines()[0].split(":", 1)[-1].strip() if apache_v else "?"
    pyv = subprocess.run([h.SYSTEM_PYTHON, "-V"], capture_output=True, text=True).stdout.strip()
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    wrk_v = (
        (wrk_v.stdout or wrk_v.stderr).splitlines()[0].split("[")[0].strip()
        if (wrk_v.stdout or wrk_v.stderr)
        else "wrk"
    )
    os_name = "Linux"
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gb": round(mem_kb / 1024 / 1024, 1),
        "os": os_name,
        "kernel": platform.release(),
        "apache": apache_v,
        "python": pyv,
        "wrk": wrk_v,
    }


def versions(venv: Path) -> str:
    code = (
        "import importlib.metadata as m\n"
        "print(', '.join(f'{n} {m.version(n)}' for n in ('wsgate','Django','flup','fcgisgi','pyuwsgi','gunicorn')))"
    )
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True).stdout.strip()


def _overlap(a: Result, b: Result) -> str:
    """Whether the req/s ranges of the rounds overlap: then a median ratio is no clear result."""
    if a.low <= b.high and b.low <= a.high:
        return "ranges overlap"
    return "ranges apart"


UWSGI_KEYS = ("uwsgi_fastcgi", "uwsgi_fastcgi_reuse", "uwsgi_uwsgi")


def above_floor(res: Result | None, floor: float | None) -> float | None:
    """A server's CPU µs per request above the view's own in-process cost."""
    if res is None or res.cpu_us is None or floor is None:
        return None
    return res.cpu_us - floor


def targets(results: dict[str, Result], floor: float | None = None) -> list[tuple[str, str, bool | None]]:
    """(name, value, met) for each target, judged on the medians; "(info)" names carry no target."""

    def r(key):
        res = results.get(key)
        return res if res is not None and res.rounds and not res.error else None

    out = []

    def ratio(name, a, b, threshold):
        if a is None or b is None or not b.rps:
            out.append((name, "n/a", None))
            return
        value = a.rps / b.rps
        text = f"{value:.2f}x ({a.rps:.0f} vs {b.rps:.0f} req/s; {_overlap(a, b)})"
        out.append((name, text, value >= threshold))

    def p99(name, a, b, factor):
        if a is None or b is None:
            out.append((name, "n/a", None))
            return
        text = f"{a.p99_ms:.1f} ms vs {b.p99_ms:.1f} ms ({b.label}), {a.p99_ms / b.p99_ms:.2f}x"
        out.append((name, text, a.p99_ms <= factor * b.p99_ms))

    def cpu(name, a, b):
        ca, cb = above_floor(a, floor), above_floor(b, floor)
        if ca is None or cb is None:
            out.append((name, "n/a", None))
            return
        out.append((name, f"{ca:.0f} vs {cb:.0f} µs/req above the floor ({b.label})", ca <= cb))

    plain, reuse, mw, gun = r("wsgate_fastcgi"), r("wsgate_fastcgi_reuse"), r("mod_wsgi"), r("gunicorn")
    uwsgis = [x for x in map(r, UWSGI_KEYS) if x is not None]
    best_uwsgi = max(uwsgis, key=lambda x: x.rps) if uwsgis else None
    leanest_uwsgi = min((x for x in uwsgis if x.cpu_us is not None), key=lambda x: x.cpu_us, default=None)
    clean = [x for x in [mw, gun, *uwsgis] if x is not None and not x.errors]
    best_p99 = min(clean, key=lambda x: x.p99_ms) if clean else None
    ratio("wsgate fastcgi, enablereuse=on >= 1.1x the best uWSGI row (req/s)", reuse, best_uwsgi, 1.1)
    ratio("wsgate fastcgi >= 1.0x uWSGI fastcgi (req/s)", plain, r("uwsgi_fastcgi"), 1.0)
    cpu("wsgate fastcgi, enablereuse=on: CPU above the floor <= uWSGI's", reuse, leanest_uwsgi)
    cpu("wsgate fastcgi: CPU above the floor <= uWSGI's", plain, leanest_uwsgi)
    ratio("wsgate fastcgi, enablereuse=on >= 1.2x gunicorn (req/s)", reuse, gun, 1.2)
    ratio("wsgate fastcgi, enablereuse=on >= 1.1x mod_wsgi daemon (req/s)", reuse, mw, 1.1)
    p99(
        "wsgate fastcgi, enablereuse=on p99 <= 1.2x the best p99 of mod_wsgi daemon, uWSGI, gunicorn "
        "(rows without errors)",
        reuse,
        best_p99,
        1.2,
    )
    ratio("wsgate relay >= 0.8x the python -S CGI floor (req/s)", r("wsgate_relay"), r("cgi_floor_bare"), 0.8)
    ratio("(info) wsgate fastcgi vs gunicorn (req/s)", plain, gun, 0.0)
    ratio("(info) wsgate fastcgi vs mod_wsgi daemon (req/s)", plain, mw, 0.0)
    ratio("(info) wsgate fastcgi vs flup prefork (req/s)", plain, r("flup"), 0.0)
    ratio("(info) fcgid, one process per client vs the role's 8 (req/s)", r("fcgid_matched"), r("fcgid"), 0.0)
    ratio("(info) wsgate relay vs wsgiref CGI (req/s)", r("wsgate_relay"), r("wsgiref_cgi"), 0.0)
    ratio("(info) wsgate cgi vs wsgiref CGI (req/s)", r("wsgate_cgi"), r("wsgiref_cgi"), 0.0)
    ratio("(info) wsgate cgi vs the CGI floor that imports the app (req/s)", r("wsgate_cgi"), r("cgi_floor"), 0.0)
    if "wsgate_fastcgi_lf" in results:
        ratio("(info) leader/follower vs shared epoll (req/s)", r("wsgate_fastcgi_lf"), plain, 0.0)
        ratio(
            "(info) leader/follower vs shared epoll, enablereuse=on (req/s)", r("wsgate_fastcgi_lf_reuse"), reuse, 0.0
        )
    return out


def render(bench: Bench, info: dict, tgt) -> str:
    a = bench.args
    lines = []
    lines.append(
        f"Measured by `server/bench/run.py` on {info['cores']} cores ({info['cpu']}), "
        f"{info['mem_gb']} GB, {info['os']} (kernel {info['kernel']}); {info['apache']} "
        f"(event MPM, 2 processes x 32 threads, keep-alive); {info['python']} "
        f"(`/usr/bin/python3`, the one mod_wsgi embeds); {versions(bench.venv)}; {info['wrk']}."
    )
    lines.append("")
    lines.append(
        f"Method: every row serves the same Django view (`{VIEW}`: URL routing, security/common/CSRF "
        f"middleware, a 14-byte text response) from `server/tests/django_project` behind the same "
        f"Apache on 127.0.0.1. Load: `wrk -t2 -c{a.connections} -d{a.duration:g}s --timeout 30s` for the "
        f"daemons, `-c{a.cgi_connections} -d{a.cgi_duration:g}s` for the CGI rows, {a.rounds} rounds after a warm-up "
        f"({a.warmup:g} s of load for the daemons). All setups of a group (daemons, CGI) run side by "
        f"side, each with its own Apache, and the rounds go round-robin across them, so drift in the "
        f"machine's load affects all alike. req/s counts only 2xx responses (median of the rounds, "
        f"with the range); errors are the sum over the rounds of socket errors and non-2xx responses; "
        f"p50/p99 are wrk's latency percentiles (all responses), median of the rounds. wrk runs on the "
        f"same {info['cores']} cores as "
        f"Apache and the application. Peak RSS is the largest sum of VmRSS over Apache's process tree "
        f"plus the backend's processes, sampled every 0.25 s (shared pages of forked processes are "
        f'counted in every process); "app" leaves out the httpd processes. Backends: same budget of '
        f"{PROCESSES} processes x {THREADS} threads; flup's prefork server is single-threaded, so it "
        f"gets {PROCESSES * THREADS} children; fcgisgi is one asyncio process, so two of them share "
        f"one listening socket (handed over as fd 0, as mod_fcgid does). FastCGI rows go through "
        f'mod_proxy_fcgi `SetHandler "proxy:unix:...|fcgi://localhost/"`, CGI rows through mod_cgid. '
        f"switches/req and CPU µs/req: context switches (voluntary and involuntary, every thread) and "
        f"user+system CPU time of the application's processes (for mod_wsgi its daemon processes) during "
        f"a round, divided by the round's requests, median of the rounds; the CPU time of Apache and wrk "
        f"is not in it."
    )
    lines.append("")
    lines.append(
        "| setup | ok req/s | range | p50 ms | p99 ms | errors | peak RSS MB (app) | switches/req | CPU µs/req "
        "| above floor µs/req | vs mod_wsgi's |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    floor = statistics.median(bench.floor) if bench.floor else None
    mw = next((x for x in bench.results if x.key == "mod_wsgi" and x.rounds and not x.error), None)
    mw_share = above_floor(mw, floor)
    for res in bench.results:
        if bench.args.only and res.key not in bench.args.only:
            continue
        if res.error or not res.rounds:
            lines.append(f"| {res.label} | failed: {(res.error or 'no data')[:80]} | | | | | | | | | |")
            continue
        switches = f"{res.switches:.1f}" if res.switches is not None else ""
        cpu = f"{res.cpu_us:.0f}" if res.cpu_us is not None else ""
        share = above_floor(res, floor)
        above = f"{share:.0f}" if share is not None else ""
        vs = f"{share / mw_share:.2f}x" if share is not None and mw_share else ""
        lines.append(
            f"| {res.label} | {res.rps:.1f} | {res.rps_range} | {res.p50_ms:.1f} | {res.p99_ms:.1f} | {res.errors} | "
            f"{res.peak_rss_kb / 1024:.0f} ({res.peak_app_rss_kb / 1024:.0f}) | {switches} | {cpu} | {above} | {vs} |"
        )
    if floor is not None:
        lines.append(
            f"| the view in-process, no server (floor) | | | | | | | | {floor:.0f} "
            f"({min(bench.floor):.0f}\N{EN DASH}{max(bench.floor):.0f}) | 0 | |"
        )
    notes = [r for r in bench.results if r.note and not r.error]
    if notes:
        lines.append("")
        for res in notes:
            lines.append(f"- {res.label}, errors: {res.note}")
    if getattr(bench, "startup", None):
        lines.append("")
        lines.append("Process start-up (mean ± sd of 15 runs, wall time, no load):")
        lines.append("")
        for label, (mean, sd) in bench.startup.items():
            lines.append(f"- `{label}`: {mean:.1f} ± {sd:.1f} ms")
    lines.append("")
    lines.append(
        f"Load average of the machine (1/5/15 min) at the start: {bench.load_start}; at the end: {bench.load_end}."
    )
    lines.append("")
    lines.append(
        "Targets, judged on the medians. Where the req/s ranges of the rounds overlap the difference is "
        "within the spread between rounds, so a ratio there is stated, not claimed as a win or a loss."
    )
    lines.append("")
    for name, value, ok in tgt:
        mark = "n/a" if ok is None else ("met" if ok else "NOT met")
        if ok is not None and "ranges overlap" in value:
            mark += " on the medians, ranges overlap"
        if name.startswith("(info)"):
            lines.append(f"- {name[7:]}: {value}")
        else:
            lines.append(f"- {name}: {value} — {mark}")
    return "\n".join(lines)


def update_readme(text: str) -> None:
    block = f"{START_MARK}\n{text}\n{END_MARK}"
    if README.exists():
        content = README.read_text()
    else:
        content = "# wsgate\n"
    if START_MARK in content and END_MARK in content:
        before = content[: content.index(START_MARK)]
        after = content[content.index(END_MARK) + len(END_MARK) :]
        content = before + block + after
    else:
        if "## Benchmark" not in content:
            content = content.rstrip("\n") + "\n\n## Benchmark\n"
        content = content.rstrip("\n") + "\n\n" + block + "\n"
    README.write_text(content)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load per round for the daemons (10)")
    p.add_argument(
        "--cgi-duration",
        type=float,
        default=15.0,
        help="seconds of load per round for the CGI rows (15; they serve only a few req/s)",
    )
    p.add_argument("--rounds", type=int, default=5, help="rounds per setup (default 5)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up load for daemons")
    p.add_argument("--connections", type=int, default=16, help="wrk connections for daemons (16)")
    p.add_argument("--cgi-connections", type=int, default=4, help="wrk connections for CGI rows (4)")
    p.add_argument(
        "--fcgid-warmups",
        type=int,
        default=5,
        help="extra warm-up loads for the mod_fcgid rows, so that their processes are started before the rounds (5)",
    )
    p.add_argument(
        "--floor-calls", type=int, default=20000, help="calls of the view per round for the in-process floor (20000)"
    )
    p.add_argument(
        "--only",
        nargs="*",
        help="only these setups (keys: wsgate_fastcgi "
        "wsgate_fastcgi_reuse flup fcgisgi mod_wsgi uwsgi_fastcgi uwsgi_fastcgi_reuse uwsgi_uwsgi gunicorn fcgid "
        "fcgid_matched floor wsgate_relay wsgate_cgi wsgiref_cgi cgi_floor_bare cgi_floor "
        "cgi_floor_request; with --variants also wsgate_fastcgi_lf wsgate_fastcgi_lf_reuse)",
    )
    p.add_argument(
        "--variants",
        action="store_true",
        help="also measure the worker designs of bench/variants (leader/follower accept), with and without "
        "enablereuse=on; the README is then not written",
    )
    p.add_argument("--no-readme", action="store_true", help="do not write server/README.md")
    p.add_argument("--json", type=Path, help="also write raw results to this file")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = p.parse_args(argv)

    started = time.monotonic()
    h.ensure_system_packages(wsgi=True, wrk=True)
    bench = Bench(args)
    bench.load_start = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    try:
        bench.run_all()
    finally:
        bench.cleanup()
    bench.load_end = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results = {r.key: r for r in bench.results}
    info = machine_info()
    tgt = targets(results, statistics.median(bench.floor) if bench.floor else None)
    text = render(bench, info, tgt)
    print()
    print(text)
    print(f"\n(total bench time {time.monotonic() - started:.0f} s)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": info, "results": [r.__dict__ | {"rps": r.rps} for r in bench.results], "targets": tgt},
                indent=1,
                default=str,
            )
        )
    if not args.no_readme and not args.only and not args.variants:
        update_readme(text)
        print(f"wrote the table into {README}")
    if args.strict and any(ok is False for _, _, ok in tgt):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
