"""A reload under load loses nothing, behind a real Apache, for each way the roles reload:

- `wsgate fastcgi` behind mod_proxy_fcgi with enablereuse=on (and the ttl= the README
  recommends): SIGHUP to the master, while clients keep Apache busy over kept connections;
- the relay's backend: SIGHUP through its pid file, while CGI relays keep arriving;
- mod_fcgid: a graceful restart of Apache, which replaces the `wsgate fcgid` processes.

Every request of the load must be answered 2xx, and after a reload the old code must stop
serving: the answers come from the new processes only.
"""

from __future__ import annotations

import http.client
import itertools
import os
import signal
import threading
import time
from pathlib import Path

import it_harness as h
import pytest
from it_setup import DAEMON_WORKERS, make_frontend

PATIENCE = 60.0
# Reloads per test. With enablereuse=on, ten reloads under 16 clients were enough
# to lose requests when a stopping worker closed its kept connections itself.
RELOADS = int(os.environ.get("WSGATE_IT_RELOADS", "10"))
_COUNTER = itertools.count()


def wait_until(predicate, timeout: float = PATIENCE, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


class Load:
    """Clients sending GET /echo/... through Apache until stopped, each answer recorded.

    keepalive: each client keeps its HTTP connection to Apache (as browsers do); otherwise
    a new one per request, where Apache itself restarts (its children close idle
    keep-alive connections then, which says nothing about the gateway).
    """

    def __init__(self, fe, clients: int, keepalive: bool = True):
        self.fe = fe
        self.clients = clients
        self.keepalive = keepalive
        self.records: list[dict] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]

    def _client(self, index: int) -> None:
        conn = None
        for n in itertools.count():
            if self.stopping.is_set():
                break
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.fe.port, timeout=PATIENCE)
            started = time.monotonic()
            record = {"start": started, "path": f"{h.MOUNT}/echo/load-{index}-{n}"}
            try:
                conn.request("GET", record["path"])
                reply = conn.getresponse()
                body = reply.read()
                record["status"] = reply.status
                if reply.status == 200:
                    record["pid"] = h.Response(reply.status, [], body).json()["pid"]
                else:
                    record["body"] = body[:200]
            except Exception as exc:
                record["status"] = None
                record["error"] = repr(exc)
                conn.close()
                conn = None
            record["end"] = time.monotonic()
            if not self.keepalive and conn is not None:
                conn.close()
                conn = None
            with self.lock:
                self.records.append(record)
        if conn is not None:
            conn.close()

    def count(self) -> int:
        with self.lock:
            return len(self.records)

    def answered_since(self, moment: float) -> list[dict]:
        with self.lock:
            return [r for r in self.records if r["start"] >= moment]

    def wait_for(self, more: int) -> None:
        target = self.count() + more
        assert wait_until(lambda: self.count() >= target), f"the load stalled at {self.count()} requests"

    def failures(self) -> list[dict]:
        with self.lock:
            return [r for r in self.records if r["status"] is None or not 200 <= r["status"] < 300]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(PATIENCE)


def reload_and_wait(signal_reload, processes, load: Load) -> set[int]:
    """Reload, wait until every process serving before is gone and as many new ones serve,
    then until the load has gone on; the new processes."""
    before = set(processes())
    assert before, "no process serves before the reload"
    signal_reload()
    replaced = wait_until(lambda: (lambda now: now and not (now & before) and now)(set(processes())))
    assert replaced, f"the processes of before the reload still run: before {before}, now {set(processes())}"
    load.wait_for(50)
    return set(processes())


def check(load: Load, reloads: int, newest: set[int], since: float) -> None:
    failures = load.failures()
    assert not failures, f"{len(failures)} of {load.count()} requests failed across {reloads} reloads: {failures[:5]}"
    late = load.answered_since(since)
    assert late, "nothing was answered after the last reload"
    stale = {r["pid"] for r in late} - newest
    assert not stale, f"after the last reload, processes {stale} answered besides the new ones {newest}"
    print(f"{load.count()} requests across {reloads} reloads, none failed")


@pytest.fixture
def reuse_frontend(venv, project, itbase):
    fe = make_frontend(
        "proxy_fcgi_reuse", venv, project, itbase, tag=f"-reload{next(_COUNTER)}", daemon_extra=("--log-level", "info")
    )
    yield fe
    fe.stop()


def test_fastcgi_reload_with_kept_connections(reuse_frontend):
    fe = reuse_frontend
    master = fe.backend
    assert wait_until(lambda: len(master.workers()) == DAEMON_WORKERS)
    with Load(fe, clients=16) as load:
        load.wait_for(100)
        for _ in range(RELOADS):
            newest = reload_and_wait(lambda: os.kill(master.pid, signal.SIGHUP), master.workers, load)
        since = time.monotonic()
        load.wait_for(100)
    assert master.alive()
    check(load, RELOADS, newest, since)


@pytest.fixture
def relay_frontend(venv, project, itbase):
    fe = make_frontend("relay", venv, project, itbase, tag=f"-reload{next(_COUNTER)}")
    yield fe
    fe.stop()


def test_relay_backend_reload(relay_frontend):
    fe = relay_frontend
    pidfile = fe.workdir / "relay" / "relay.sock.pid"
    first = fe.request("GET", "/echo/start")  # starts the backend
    assert first.status == 200, first

    def master() -> int | None:
        try:
            return int(Path(pidfile).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def workers() -> list[int]:
        pid = master()
        return h.children(pid) if pid else []

    assert wait_until(lambda: len(workers()) >= 1)
    with Load(fe, clients=4) as load:
        load.wait_for(20)
        for _ in range(3):
            newest = reload_and_wait(lambda: os.kill(master(), signal.SIGHUP), workers, load)
        since = time.monotonic()
        load.wait_for(20)
    check(load, 3, newest, since)


@pytest.fixture
def fcgid_frontend(venv, project, itbase):
    fe = make_frontend("fcgid", venv, project, itbase, tag=f"-reload{next(_COUNTER)}")
    yield fe
    fe.stop()


def test_fcgid_apache_graceful_restart(fcgid_frontend):
    fe = fcgid_frontend
    apache = fe.apache

    def fcgid_processes() -> list[int]:
        return [p for p in apache.process_tree() if "wsgate fcgid" in h.cmdline(p)]

    with Load(fe, clients=2, keepalive=False) as load:
        load.wait_for(50)
        for _ in range(3):
            newest = reload_and_wait(lambda: os.kill(apache.pid, signal.SIGUSR1), fcgid_processes, load)
        since = time.monotonic()
        load.wait_for(50)
    check(load, 3, newest, since)
