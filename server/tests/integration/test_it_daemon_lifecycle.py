"""Process management of `wsgate fastcgi` behind mod_proxy_fcgi: a worker killed with -9 under
load is replaced, SIGHUP reloads gracefully, SIGTERM drains, --max-requests recycles."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))
from fcgiclient import request
from it_setup import DAEMON_THREADS, DAEMON_WORKERS, make_frontend
from support import gone

_COUNTER = itertools.count()


def wait_until(predicate, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def wait_in_app(fe, name: str, timeout: float = 15.0) -> None:
    """Wait until a /slow/?mark=NAME request has reached the application."""
    marker = fe.backend.mark_dir / name
    assert wait_until(marker.exists, timeout, 0.02), f"request {name} never reached the app"


def get(fe, path, timeout=30.0):
    try:
        r = fe.request("GET", path, timeout=timeout)
    except Exception as exc:  # connection reset etc.
        return None, repr(exc)
    return r, r.status


def pids_answering_new_connections(fe, count: int) -> set[int]:
    """The workers that answer count FastCGI requests, one after another, each on a new connection.

    A worker that accepts goes to the end of the line for the next connection, so
    consecutive ones go round every worker.
    """
    socket_path = str(fe.workdir / "sock" / "wsgate.sock")
    pids = set()
    for _ in range(count):
        reply = request(socket_path, "/echo/direct", extra={"SCRIPT_NAME": "", "PATH_INFO": "/echo/direct"})
        assert reply.end is not None and reply.status == 200, reply.records
        pids.add(json.loads(reply.body)["pid"])
    return pids


def stopped(pid) -> bool:
    """Whether every thread of the process has stopped (SIGSTOP), so that none accepts any more."""
    try:
        states = [
            (Path("/proc/%d/task" % pid) / task / "stat").read_text().rpartition(")")[2].split()[0]
            for task in os.listdir("/proc/%d/task" % pid)
        ]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return bool(states) and all(state in ("T", "t") for state in states)


def connections_held(pid, socket_path: str) -> int:
    """How many connections to socket_path the process holds: each carries at most one request."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    held = 0
    with open("/proc/net/unix") as table:
        next(table)
        for line in table:
            fields = line.split()
            # Num RefCount Protocol Flags Type St Inode Path; St 03 is connected.
            if len(fields) == 8 and fields[6] in inodes and fields[5] == "03" and fields[7] == socket_path:
                held += 1
    return held


@pytest.fixture(scope="module", params=["proxy_fcgi", "proxy_fcgi_reuse"])
def kill_frontend(request, venv, project, itbase):
    fe = make_frontend(request.param, venv, project, itbase, tag="-kill")
    yield fe
    fe.stop()


def test_kill_9_worker_under_load(kill_frontend):
    fe = kill_frontend
    master = fe.backend
    assert wait_until(lambda: len(master.workers()) == DAEMON_WORKERS, 20), master.workers()
    before = set(master.workers())
    victim = sorted(before)[0]

    records: list[dict] = []
    lock = threading.Lock()
    t_start = time.monotonic()
    stop_at = t_start + 10.0
    kill_at = t_start + 3.0

    def client(i: int) -> None:
        n = 0
        while time.monotonic() < stop_at:
            path = "/slow/?t=0.3" if (i + n) % 2 == 0 else f"/echo/load-{i}-{n}"
            n += 1
            t0 = time.monotonic()
            r, info = get(fe, path)
            rec = {
                "start": t0,
                "end": time.monotonic(),
                "path": path,
                "info": info,
                "ok": r is not None and r.status == 200,
                "pid": r.json().get("pid") if r is not None and r.status == 200 else None,
            }
            with lock:
                records.append(rec)

    clients = DAEMON_WORKERS * DAEMON_THREADS  # the full budget of request slots
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, i) for i in range(clients)]
        time.sleep(max(0.0, kill_at - time.monotonic()))
        # Stopped, the victim takes no new connection, so what it holds when
        # killed is known: a request can fail only on one of those.
        os.kill(victim, signal.SIGSTOP)
        assert wait_until(lambda: stopped(victim), 5, 0.005), "the victim did not stop"
        held = connections_held(victim, str(fe.workdir / "sock" / "wsgate.sock"))
        t_kill = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        # Its connections break when its last thread has exited, which under load
        # is a moment after the signal: what Apache sent it until then fails in flight.
        wait_until(lambda: gone(victim), 5, 0.005)
        t_dead = time.monotonic()
        recovered = wait_until(
            lambda: (lambda w: len(w) == DAEMON_WORKERS and victim not in w)(set(master.workers())), 15
        )
        t_recovered = time.monotonic()
        for f in futures:
            f.result()

    after = set(master.workers())
    assert master.alive(), "the master died"
    assert recovered, f"worker count did not recover: before={before} after={after}"
    new_workers = after - before
    assert new_workers, f"no replacement worker: before={before} after={after}"

    failures = [r for r in records if not r["ok"]]
    ok_count = len(records) - len(failures)
    assert ok_count > 50, f"too little load went through: {ok_count} ok of {len(records)}"
    # Before the kill the load is served cleanly.
    early = [r for r in failures if r["end"] < t_kill]
    assert not early, f"requests failed before the kill: {early[:5]}"
    # Requests started after the replacement was up are served cleanly too.
    late = [r for r in failures if r["start"] > t_recovered + 0.5]
    assert not late, f"requests failed after recovery ({t_recovered - t_start:.2f}s): {late[:5]}"
    in_flight = [r for r in failures if r["start"] <= t_dead]
    during = [r for r in failures if r["start"] > t_dead]
    assert len(in_flight) <= held, (
        f"{len(in_flight)} in-flight failures, more than the {held} connections the victim held: {in_flight[:8]}"
    )
    assert not during, (
        f"{len(during)} requests sent after the kill failed while the worker was being replaced "
        f"(kill at {t_kill - t_start:.2f}s, dead at {t_dead - t_start:.2f}s, recovered at "
        f"{t_recovered - t_start:.2f}s): {during[:5]}"
    )
    # ...and none of the failed ones fails permanently.
    for r in failures:
        again, info = get(fe, r["path"])
        assert again is not None and again.status == 200, f"retry of {r['path']} failed: {info}"
    served_by_new = {r["pid"] for r in records if r["ok"] and r["start"] > t_recovered}
    if fe.name.endswith("reuse"):
        # Apache keeps and reuses the connections it opened while the victim was down, all
        # to the survivor, so the replacement may see none of its traffic in this window.
        # New connections, though, go round the workers.
        served_by_new = pids_answering_new_connections(fe, DAEMON_WORKERS)
    assert served_by_new & new_workers, (
        f"replacement worker(s) {new_workers} served nothing; pids after recovery: {served_by_new}"
    )
    print(
        f"kill -9 {victim}: {len(failures)} in-flight failures of {len(records)} requests "
        f"({held} connections held); "
        f"replacement {sorted(new_workers)} up after {t_recovered - t_kill:.2f}s"
    )


@pytest.fixture
def plain_frontend(request, venv, project, itbase):
    holder = {}

    def make(*extra, workers=DAEMON_WORKERS, threads=DAEMON_THREADS):
        tag = f"-p{next(_COUNTER)}"
        fe = make_frontend(
            "proxy_fcgi", venv, project, itbase, tag=tag, daemon_extra=extra, workers=workers, threads=threads
        )
        holder["fe"] = fe
        return fe

    yield make
    if "fe" in holder:
        holder["fe"].stop()


def test_sighup_graceful_reload(plain_frontend):
    fe = plain_frontend("--graceful-timeout", "20")
    master = fe.backend
    assert wait_until(lambda: len(master.workers()) == DAEMON_WORKERS, 20)
    before = set(master.workers())
    with ThreadPoolExecutor(4) as pool:
        slow = [pool.submit(get, fe, f"/slow/?t=2&mark=hup{i}") for i in range(3)]
        for i in range(3):
            wait_in_app(fe, f"hup{i}")
        os.kill(master.pid, signal.SIGHUP)
        # New requests keep being served during the reload.
        during = [get(fe, f"/echo/during-{i}") for i in range(10)]
        results = [f.result() for f in slow]
    assert all(r is not None and r.status == 200 for r, _ in results), results
    assert all(r is not None and r.status == 200 for r, _ in during), during
    replaced = wait_until(lambda: (lambda w: len(w) == DAEMON_WORKERS and not (w & before))(set(master.workers())), 15)
    assert replaced, f"workers not replaced after SIGHUP: before={before} now={master.workers()}"
    assert master.alive()
    r, info = get(fe, "/echo/after-reload")
    assert r is not None and r.status == 200, info
    assert r.json()["pid"] in set(master.workers())


def test_sigterm_graceful_stop(plain_frontend):
    fe = plain_frontend("--graceful-timeout", "20")
    master = fe.backend
    assert wait_until(lambda: len(master.workers()) == DAEMON_WORKERS, 20)
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(get, fe, "/slow/?t=2&mark=term")
        wait_in_app(fe, "term")
        os.kill(master.pid, signal.SIGTERM)
        r, info = slow.result()
    assert r is not None and r.status == 200, f"in-flight request lost on SIGTERM: {info}"
    try:
        code = master.proc.wait(15)
    except Exception:
        pytest.fail("master still running 15 s after SIGTERM")
    assert code == 0, f"exit status {code}"
    assert not master.workers()


def test_max_requests_recycles_worker(plain_frontend):
    fe = plain_frontend("--max-requests", "5", workers=1, threads=2)
    master = fe.backend
    pids, statuses = [], []
    for i in range(16):
        r, info = get(fe, f"/echo/recycle-{i}")
        statuses.append(info)
        if r is not None and r.status == 200:
            pids.append(r.json()["pid"])
    assert statuses == [200] * 16, statuses
    distinct = list(dict.fromkeys(pids))
    assert len(distinct) >= 3, f"16 requests with --max-requests 5 used workers {distinct}"
    assert wait_until(lambda: len(master.workers()) == 1, 10)


def test_load_between_budget_and_queue_is_not_refused(plain_frontend):
    """workers x threads slots plus the per-worker queue (--threads more per worker): 1.5x the
    slots of concurrent requests must queue, not be refused with 503."""
    fe = plain_frontend()
    master = fe.backend
    assert wait_until(lambda: len(master.workers()) == DAEMON_WORKERS, 20)
    concurrency = DAEMON_WORKERS * DAEMON_THREADS * 3 // 2
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda i: get(fe, f"/slow/?t=1&i={i}"), range(concurrency)))
    statuses = [info for _, info in results]
    assert statuses == [200] * concurrency, f"{concurrency} concurrent 1 s requests: {statuses}"
