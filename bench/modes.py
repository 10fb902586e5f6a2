#!/usr/bin/env python3
"""The six deployment modes measured as site.yml deploys them (`make bench`).

For each mode a systemd container from scripts/demo-vps.sh (the `make demo` VPS, on its own name
and ports) is provisioned over SSH with site.yml and bench/inventory, timed twice: the first
converge and a re-run that should change nothing. Then every mode is loaded the same way, in
interleaved rounds (the order rotates each round), so that a change in the machine's load falls
on every mode alike:

  wrk, the host's binary, run inside the container's network namespace (nsenter --net) against
  Apache on 127.0.0.1:80, GET / (the sample app's home page, a rendered template), with the same
  threads, connections, timeout and duration for every mode, after a short warm-up that is not
  counted (it also starts what a mode starts on demand: mod_fcgid's processes, the relay's
  backend).

While wrk runs, the PSS of Apache and of the app's processes (every process in the container but
the base system's: systemd, journald, sshd, ...) is summed from /proc every 0.25 s; the table
shows the peak. It reports, per mode: 2xx responses per second (median and range over the
rounds), p50 and p99 (medians over the rounds), errors (socket errors and non-2xx responses),
peak PSS, and the two playbook wall times. It writes the table into README.md between the
bench-modes markers and draws docs/bench-modes.png; a --quick run writes both under
.cache/bench-modes/ instead.

This prints numbers; it is not a test and always exits 0 once it has measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = ROOT / "bench" / "inventory"
README = ROOT / "README.md"
CHART = ROOT / "docs" / "bench-modes.png"
CACHE = ROOT / ".cache" / "bench-modes"
START_MARK = "<!-- bench-modes:start -->"
END_MARK = "<!-- bench-modes:end -->"
MODES = ("embedded", "daemon", "fastcgi", "fcgid", "cgi", "relay")
# Container names and ports: apart from `make demo` (2222/8080) and the Molecule scenarios.
SSH_PORT = {mode: 24001 + i for i, mode in enumerate(MODES)}
WEB_PORT = {mode: 8191 + i for i, mode in enumerate(MODES)}
PATH = "/"
# Processes of the container that are neither Apache nor the app.
BASE_COMMS = {
    "systemd",
    "systemd-journal",
    "systemd-logind",
    "systemd-udevd",
    "systemd-network",
    "systemd-resolve",
    "systemd-timesyn",
    "(sd-pam)",
    "dbus-daemon",
    "sshd",
    "sshd-session",
    "sshd-auth",
    "cron",
    "agetty",
    "login",
    "bash",
    "sh",
    "sleep",
    "ps",
    "cat",
    "htcacheclean",
}

WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def container(mode: str) -> str:
    return f"django-vps-bench-{mode}"


@dataclass
class ModeResult:
    mode: str
    converge_s: float | None = None
    rerun_s: float | None = None
    rerun_changed: int | None = None
    # A first converge that failed: its wall time; converge_s is then the second run's.
    converge_failed_s: float | None = None
    rounds: list[dict] = field(default_factory=list)
    peak_pss_kb: int = 0
    peak_rss_kb: int = 0
    peak_procs: int = 0
    comms: list[str] = field(default_factory=list)
    error: str | None = None

    def values(self, key: str) -> list[float]:
        """One value per round; a latency only from rounds in which some request completed."""
        return [r[key] for r in self.rounds if r["requests"] or not key.endswith("_ms")]

    def median(self, key: str) -> float:
        vals = self.values(key)
        return statistics.median(vals) if vals else float("nan")

    @property
    def requests(self) -> int:
        return sum(r["requests"] for r in self.rounds)

    @property
    def errors(self) -> int:
        return sum(r["errors"] for r in self.rounds)


# --- containers and provisioning ------------------------------------------------------------


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], check=check, capture_output=True, text=True)


def container_up(mode: str, image: str) -> None:
    name = container(mode)
    if podman("container", "exists", name, check=False).returncode == 0:
        podman("rm", "-f", name)
    subprocess.run(
        [str(ROOT / "scripts" / "demo-vps.sh"), "up", name, image, str(WEB_PORT[mode]), str(SSH_PORT[mode])],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def container_down(mode: str) -> None:
    podman("rm", "-f", container(mode), check=False)


class PlaybookFailed(RuntimeError):
    def __init__(self, message: str, elapsed: float) -> None:
        super().__init__(message)
        self.elapsed = elapsed


def playbook(mode: str, log: Path) -> tuple[float, int | None]:
    """Run site.yml against one mode's container; its wall time and the recap's changed count."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    cmd = [
        str(ROOT / ".venv" / "bin" / "ansible-playbook"),
        "site.yml",
        "-i",
        str(INVENTORY),
        "--limit",
        container(mode),
    ]
    start = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise PlaybookFailed(f"site.yml failed for {mode} (exit {proc.returncode}); see {log}", elapsed)
    m = re.search(rf"^{re.escape(container(mode))}\s*:.*?changed=(\d+)", log.read_text(), re.M)
    return elapsed, int(m.group(1)) if m else None


# --- load and memory ------------------------------------------------------------------------


def init_pid(mode: str) -> int:
    return int(podman("inspect", "-f", "{{.State.Pid}}", container(mode)).stdout.strip())


class MemorySampler(threading.Thread):
    """Peak summed PSS (and RSS) of the container's Apache and app processes, from /proc."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pidns = os.readlink(f"/proc/{pid}/ns/pid")
        self.interval = interval
        self.stop_event = threading.Event()
        self.peak_pss = self.peak_rss = self.peak_procs = 0
        self.comms: set[str] = set()

    def sample(self) -> None:
        pss = rss = procs = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{entry.name}/ns/pid") != self.pidns:
                    continue
                comm = Path(f"/proc/{entry.name}/comm").read_text().strip()
                if comm in BASE_COMMS or comm.startswith("systemd"):
                    continue
                rollup = Path(f"/proc/{entry.name}/smaps_rollup").read_text()
            except OSError:
                continue  # gone meanwhile, or a kernel thread
            fields = dict(re.findall(r"^(Pss|Rss):\s+(\d+) kB", rollup, re.M))
            if not fields:
                continue
            pss += int(fields.get("Pss", 0))
            rss += int(fields.get("Rss", 0))
            procs += 1
            self.comms.add(comm)
        self.peak_pss = max(self.peak_pss, pss)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_procs = max(self.peak_procs, procs)

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval)

    def stop(self) -> None:
        self.stop_event.set()
        self.join()


def wrk(pid: int, script: Path, args: argparse.Namespace, duration: float) -> dict:
    cmd = [
        "nsenter",
        f"--net=/proc/{pid}/ns/net",
        "--",
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{duration:g}s",
        f"--timeout={args.timeout:g}s",
        "-H",
        "Host: 127.0.0.1",
        "-s",
        str(script),
        f"http://127.0.0.1:80{PATH}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + args.timeout + 30)
    m = re.search(r"^WRKJSON (.*)$", proc.stdout, re.M)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    raw = json.loads(m.group(1))
    seconds = raw["duration_us"] / 1e6
    # wrk counts a response with a status of 400 or more as a status error; / answers 200, so
    # the rest are the 2xx responses (a check before the load makes sure / is not a redirect).
    ok = raw["requests"] - raw["status"]
    sockets = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return {
        "requests": raw["requests"],
        "ok": ok,
        "ok_rps": ok / seconds if seconds else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": raw["status"] + sockets,
        "seconds": seconds,
        "load": loadavg(),
    }


def check_status(pid: int) -> None:
    """The page answers 200 itself (not a redirect) inside the container."""
    cmd = ["nsenter", f"--net=/proc/{pid}/ns/net", "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"]
    cmd += ["--max-time", "60", "-H", "Host: 127.0.0.1", f"http://127.0.0.1:80{PATH}"]
    code = subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    if code != "200":
        raise RuntimeError(f"GET {PATH} answered {code or 'nothing'}, not 200")


# --- output ---------------------------------------------------------------------------------


def fmt_num(value: float) -> str:
    if value != value:  # NaN
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


def table(results: list[ModeResult]) -> str:
    lines = [
        "| Mode | req/s (2xx), median | range over rounds | p50 | p99 | errors / requests "
        "| peak PSS (procs) | first converge | no-change re-run |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        if r.error and not r.rounds:
            reason = " ".join(r.error.replace("|", "/").split())[:120]
            lines.append(f"| `{r.mode}` | failed: {reason} | | | | | | | |")
            continue
        ok = r.values("ok_rps")
        rerun = fmt_s(r.rerun_s)
        converge = fmt_s(r.converge_s)
        if r.converge_failed_s is not None:
            converge = f"failed after {r.converge_failed_s:.0f} s; again: {converge}"
        if r.rerun_changed:
            rerun += f" ({r.rerun_changed} changed)"
        rps = fmt_num(r.median("ok_rps"))
        if not r.requests:
            rps = "0 (no request completed within a round)"
        p50, p99 = fmt_num(r.median("p50_ms")), fmt_num(r.median("p99_ms"))
        lines.append(
            f"| `{r.mode}` | {rps} | {fmt_num(min(ok))}\N{EN DASH}{fmt_num(max(ok))} "
            f"| {p50 + ' ms' if p50 != '-' else p50} | {p99 + ' ms' if p99 != '-' else p99} "
            f"| {r.errors} / {r.requests} | {r.peak_pss_kb / 1024:.0f} MB ({r.peak_procs}) "
            f"| {converge} | {rerun} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return f"{os.cpu_count()} cores ({cpu}), {mem_kb / 1024 / 1024:.0f} GB"


def provisioned(meta: dict) -> str:
    jobs = meta["args"].get("provision_jobs", 1)
    how = "one at a time" if jobs == 1 else f"{jobs} at a time, so their converge times include each other's load"
    return (
        f"The containers were provisioned {how}; load average {meta.get('load_provision', '?')} when that began. "
        f"The whole run took {meta.get('minutes', 0):.0f} min."
    )


def section(results: list[ModeResult], meta: dict) -> str:
    a = meta["args"]
    return "\n".join(
        [
            START_MARK,
            f"Measured on {meta['date']}, {meta['machine']}, shared with other jobs: load average "
            f"{meta['load_before']} before the load rounds, {meta['load_after']} after (1, 5, 15 min); "
            f"Debian {a['image']} image; {a['rounds']} rounds of {a['duration']:g} s per mode, "
            f"{a['connections']} connections, wrk {a['threads']} threads, timeout {a['timeout']:g} s. "
            + provisioned(meta),
            "",
            table(results),
            "",
            "![req/s and p99 per mode](docs/bench-modes.png)",
            END_MARK,
        ]
    )


def write_readme(text: str, readme: Path) -> None:
    content = readme.read_text()
    start, end = content.find(START_MARK), content.find(END_MARK)
    if start < 0 or end < start:
        raise SystemExit(f"{readme}: no {START_MARK} ... {END_MARK} markers")
    readme.write_text(content[:start] + text + content[end + len(END_MARK) :])


def chart(results: list[ModeResult], meta: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    done = [r for r in results if r.rounds]
    if not done:
        say("nothing was measured: no chart")
        return
    names = [r.mode for r in done]
    ys = list(range(len(done)))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.55 * len(done) + 2.2), sharey=True)
    panels = (
        (left, "ok_rps", "2xx responses per second (log scale; higher is better)", "#3b75af"),
        (right, "p99_ms", "p99 latency, ms (log scale; lower is better)", "#c44e52"),
    )
    for ax, key, title, color in panels:
        shown = [(y, r) for y, r in zip(ys, done, strict=True) if r.values(key) and r.median(key) > 0]
        positive = [v for _, r in shown for v in r.values(key) if v > 0]
        lo_lim = min(positive) / 2 if positive else 1
        hi_lim = max(positive) * 4 if positive else 10
        meds = [r.median(key) for _, r in shown]
        lows = [m - min(r.values(key)) for m, (_, r) in zip(meds, shown, strict=True)]
        highs = [max(r.values(key)) - m for m, (_, r) in zip(meds, shown, strict=True)]
        bars_y = [y for y, _ in shown]
        ax.barh(bars_y, meds, color=color, alpha=0.85, xerr=[lows, highs], capsize=4, ecolor="#333333")
        ax.set_xscale("log")
        ax.set_xlim(lo_lim, hi_lim)
        # Labels at 1-2-5 crowd each other once the axis spans many decades.
        decades = math.log10(hi_lim / lo_lim)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 3 else (1.0,)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda _v, _pos: ""))
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", which="major", alpha=0.35)
        for y, m, hi in zip(bars_y, meds, highs, strict=True):
            ax.text((m + hi) * 1.08, y, fmt_num(m), va="center", fontsize=9)
        for y in sorted(set(ys) - set(bars_y)):
            ax.text(lo_lim * 1.1, y, "no request completed within a round", va="center", fontsize=9, color="#333333")
    left.set_yticks(ys, names)
    left.invert_yaxis()
    a = meta["args"]
    fig.suptitle(
        f"Deployed modes behind Apache 2.4 (Debian {a['image']}): GET / with {a['connections']} connections, "
        f"median of {a['rounds']} x {a['duration']:g} s, bars show the range",
        fontsize=10,
    )
    fig.text(
        0.01,
        0.01,
        f"{meta['machine']}, shared; load {meta['load_before']} before, {meta['load_after']} after. {meta['date']}",
        fontsize=7,
        color="#555555",
    )
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(results: list[ModeResult], meta: dict, quick: bool, write: bool) -> None:
    print()
    print(table(results))
    print()
    print(f"load average before: {meta['load_before']}, after: {meta['load_after']}")
    CACHE.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta, "results": [asdict(r) for r in results]}
    (CACHE / "results.json").write_text(json.dumps(data, indent=2))
    if not write:
        return
    if quick:
        chart_path = CACHE / "bench-modes.png"
        (CACHE / "table.md").write_text(section(results, meta) + "\n")
        chart(results, meta, chart_path)
        say(f"quick run: table and chart in {CACHE} (README untouched)")
    else:
        chart(results, meta, CHART)
        write_readme(section(results, meta), README)
        say(f"wrote the table into {README.name} and the chart to {CHART.relative_to(ROOT)}")


# --- the run --------------------------------------------------------------------------------


def provision_one(mode: str, step: str, image: str, r: ModeResult) -> None:
    try:
        say(f"{step}: starting {container(mode)} (ssh 127.0.0.1:{SSH_PORT[mode]})")
        container_up(mode, image)
        say(f"{step}: first converge of site.yml")
        try:
            r.converge_s, _ = playbook(mode, CACHE / f"{mode}-converge.log")
        except PlaybookFailed as exc:
            # As a user would: run it again (after systemd's start limit interval has passed).
            r.converge_failed_s = exc.elapsed
            say(f"{step}: first converge FAILED after {exc.elapsed:.0f} s ({exc}); running it again")
            time.sleep(15)
            r.converge_s, _ = playbook(mode, CACHE / f"{mode}-converge2.log")
        say(f"{step}: converged in {r.converge_s:.0f} s; no-change re-run")
        r.rerun_s, r.rerun_changed = playbook(mode, CACHE / f"{mode}-rerun.log")
        say(f"{step}: re-run {r.rerun_s:.0f} s, changed={r.rerun_changed}")
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        r.error = str(exc)
        say(f"{step}: FAILED: {exc}")


def provision(modes: list[str], image: str, results: dict[str, ModeResult], jobs: int) -> None:
    """Start and provision each mode's container, `jobs` at a time; a mode that fails is reported, not loaded."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [
            pool.submit(provision_one, mode, f"[{i}/{len(modes)}] {mode}", image, results[mode])
            for i, mode in enumerate(modes, 1)
        ]
        for future in futures:
            future.result()


def load(modes: list[str], args: argparse.Namespace, results: dict[str, ModeResult]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_LUA)
        script = Path(f.name)
    try:
        pids = {}
        for mode in modes:
            if results[mode].error:
                continue  # its provisioning failed
            try:
                pids[mode] = init_pid(mode)
                check_status(pids[mode])
            except (RuntimeError, subprocess.CalledProcessError, ValueError) as exc:
                results[mode].error = results[mode].error or str(exc)
                say(f"{mode}: not loaded: {results[mode].error}")
        modes = [m for m in modes if m in pids]
        for n in range(args.rounds if modes else 0):
            order = modes[n % len(modes) :] + modes[: n % len(modes)]
            for mode in order:
                r = results[mode]
                sampler = MemorySampler(pids[mode])
                try:
                    if args.warmup > 0:
                        wrk(pids[mode], script, args, args.warmup)
                    sampler.start()
                    rnd = wrk(pids[mode], script, args, args.duration)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    r.error = str(exc)
                    say(f"round {n + 1}/{args.rounds} {mode:8}: FAILED: {exc}")
                    continue
                finally:
                    if sampler.is_alive():
                        sampler.stop()
                r.rounds.append(rnd)
                r.peak_pss_kb = max(r.peak_pss_kb, sampler.peak_pss)
                r.peak_rss_kb = max(r.peak_rss_kb, sampler.peak_rss)
                r.peak_procs = max(r.peak_procs, sampler.peak_procs)
                r.comms = sorted(set(r.comms) | sampler.comms)
                say(
                    f"round {n + 1}/{args.rounds} {mode:8}: {rnd['ok_rps']:8.1f} req/s  p50 {rnd['p50_ms']:7.1f} ms  "
                    f"p99 {rnd['p99_ms']:7.1f} ms  errors {rnd['errors']}  PSS {sampler.peak_pss / 1024:.0f} MB  "
                    f"load {rnd['load']}"
                )
    finally:
        script.unlink(missing_ok=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, help="interleaved rounds per mode (default 3; 1 with --quick)")
    p.add_argument("--duration", type=float, help="seconds of load per round (default 10; 3 with --quick)")
    p.add_argument("--warmup", type=float, help="seconds of uncounted load before each round (default 2)")
    p.add_argument("--connections", type=int, default=16, help="wrk connections (default 16: twice the 8 slots)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--timeout", type=float, default=10, help="wrk's per-request timeout, s (default 10)")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated modes (default: all six)")
    p.add_argument("--image", default="13", choices=("12", "13"), help="Debian image (default 13)")
    p.add_argument(
        "--provision-jobs",
        type=int,
        default=1,
        help="containers provisioned at once (default 1, so that the converge times do not contend)",
    )
    p.add_argument("--quick", action="store_true", help="a short run for development; writes under .cache/")
    p.add_argument("--keep", action="store_true", help="keep the containers (removed by default)")
    p.add_argument(
        "--reuse", action="store_true", help="load the containers a --keep run left, without provisioning them"
    )
    p.add_argument("--no-write", action="store_true", help="print only; write neither the README nor the chart")
    p.add_argument("--from-json", type=Path, help="redraw the table and chart from a results.json; no run")
    args = p.parse_args(argv)
    quick = args.quick
    args.rounds = args.rounds or (1 if quick else 3)
    args.duration = args.duration or (3 if quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 2)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(args.modes) - set(MODES)
    if unknown:
        p.error(f"unknown modes: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.from_json:
        data = json.loads(args.from_json.read_text())
        results = [ModeResult(**r) for r in data["results"]]
        report(results, data["meta"], quick=data["meta"].get("quick", False), write=not args.no_write)
        return 0
    for tool in ("podman", "wrk", "nsenter", "curl"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (make bench installs wrk; podman comes with make images)")
    if not os.environ.get("VPS_SSH_KEY"):
        raise SystemExit("VPS_SSH_KEY is not set: run through `make bench`, or `source scripts/env.sh` first")
    CACHE.mkdir(parents=True, exist_ok=True)
    image = f"localhost/vps-debian:{args.image}"
    modes = args.modes
    results = {mode: ModeResult(mode) for mode in modes}
    # SIGTERM and SIGHUP end the run like Ctrl-C, so the containers still go.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    started = time.monotonic()
    load_provision = loadavg()
    say(f"modes: {' '.join(modes)}; {args.rounds} round(s) x {args.duration:g} s, {args.connections} connections")
    try:
        if args.reuse:
            say("reusing the containers of a --keep run; converge times are not measured")
        else:
            provision(modes, image, results, args.provision_jobs)
        say(f"load rounds (load average now {loadavg()})")
        load_before = loadavg()
        load(modes, args, results)
        load_after = loadavg()
        meta = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": machine(),
            "load_before": load_before,
            "load_after": load_after,
            "quick": args.quick,
            "load_provision": load_provision,
            "minutes": (time.monotonic() - started) / 60,
            "args": {
                "image": args.image,
                "rounds": args.rounds,
                "duration": args.duration,
                "connections": args.connections,
                "threads": args.threads,
                "timeout": args.timeout,
                "provision_jobs": args.provision_jobs,
            },
        }
        partial = args.quick or args.reuse or set(modes) != set(MODES)
        report([results[m] for m in modes], meta, partial, not args.no_write)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        if args.keep or args.reuse:
            say("keeping the containers: " + " ".join(container(m) for m in modes))
        else:
            for mode in modes:
                container_down(mode)
            say("removed the containers")
        say(f"took {(time.monotonic() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
