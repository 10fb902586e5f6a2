"""Process management of `wsgate fastcgi` behind mod_proxy_fcgi: a worker killed with -9 under
load is replaced, SIGHUP reloads gracefully, SIGTERM drains, --max-requests recycles."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import DAEMON_THREADS, DAEMON_WORKERS, make_frontend
import it_harness as h


def wait_until(predicate, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def get(fe, path, timeout=30.0):
    try:
        r = fe.request("GET", path, timeout=timeout)
    except Exception as exc:  # connection reset etc.
        return None, repr(exc)
    return r, r.status


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
                "start": t0, "end": time.monotonic(), "path": path, "info": info,
                "ok": r is not None and r.status == 200,
                "pid": r.json().get("pid") if r is not None and r.status == 200 else None,
            }
            with lock:
                records.append(rec)

    clients = 2 * DAEMON_WORKERS * DAEMON_THREADS
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, i) for i in range(clients)]
        time.sleep(max(0.0, kill_at - time.monotonic()))
        os.kill(victim, signal.SIGKILL)
        t_kill = time.monotonic()
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
    # Only requests in flight at the moment of the kill may fail.
    late = [r for r in failures if r["start"] > t_kill + 0.05 or r["end"] < t_kill]
    assert not late, f"requests not in flight at the kill failed: {late[:5]} (kill at {t_kill - t_start:.2f}s)"
    assert len(failures) <= 2 * DAEMON_THREADS, f"{len(failures)} failures: {failures[:8]}"
    # ...and none of them fails permanently.
    for r in failures:
        again, info = get(fe, r["path"])
        assert again is not None and again.status == 200, f"retry of {r['path']} failed: {info}"
    served_by_new = {r["pid"] for r in records if r["ok"] and r["start"] > t_recovered}
    assert served_by_new & new_workers, (
        f"replacement worker(s) {new_workers} served nothing; pids after recovery: {served_by_new}"
    )
    print(f"kill -9 {victim}: {len(failures)} in-flight failures of {len(records)} requests; "
          f"replacement {sorted(new_workers)} up after {t_recovered - t_kill:.2f}s")


@pytest.fixture
def plain_frontend(request, venv, project, itbase):
    holder = {}

    def make(*extra, workers=DAEMON_WORKERS, threads=DAEMON_THREADS):
        tag = f"-{request.node.name}"
        fe = make_frontend("proxy_fcgi", venv, project, itbase, tag=tag, daemon_extra=extra,
                           workers=workers, threads=threads)
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
        slow = [pool.submit(get, fe, "/slow/?t=2") for _ in range(3)]
        time.sleep(0.7)
        os.kill(master.pid, signal.SIGHUP)
        # New requests keep being served during the reload.
        during = [get(fe, f"/echo/during-{i}") for i in range(10)]
        results = [f.result() for f in slow]
    assert all(r is not None and r.status == 200 for r, _ in results), results
    assert all(r is not None and r.status == 200 for r, _ in during), during
    replaced = wait_until(
        lambda: (lambda w: len(w) == DAEMON_WORKERS and not (w & before))(set(master.workers())), 15
    )
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
        slow = pool.submit(get, fe, "/slow/?t=2")
        time.sleep(0.7)
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
