"""Copied into a host by test_releases.py: keeps CONNECTIONS clients
requesting a page through Apache on 127.0.0.1 while a deploy runs, and
watches every process's command line for the secret key. Bounded: it stops
at the stop file, at DEADLINE seconds or after MAX_REQUESTS, whichever
comes first.

    python3 load.py URL HOST_HEADER MARKER SECRET_FILE STOP_FILE RESULT_FILE [CONNECTIONS]
"""

import json
import sys
import threading
import time
from pathlib import Path

from http_answer import answer, opener

CONNECTIONS = 16
# Between one answer and the next request on a connection: sixteen clients
# keep requests in flight through every restart of a deploy, at a rate that
# leaves the deploy its CPU (it runs on every host of the scenario at once,
# and every request the load makes is CPU the plays wait for).
PAUSE = 1.0
# A play over every host of the scenario at -vvv takes 11 minutes on a
# saturated 2-core machine; the load must outlast it.
DEADLINE = 1200.0
MAX_REQUESTS = 200_000


class Load:
    def __init__(self, url, host_header, marker, secret_file, stop_file, connections):
        self.url = url
        self.host_header = host_header
        self.marker = marker.encode()
        self.secret = Path(secret_file).read_bytes().strip()
        self.stop_file = Path(stop_file)
        self.connections = connections
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.counts = {}
        self.failures = []
        self.first_marked = None
        self.requests = 0
        self.secret_seen = []

    def done(self):
        return self.stop_file.exists() or time.monotonic() - self.started > DEADLINE or self.requests >= MAX_REQUESTS

    def client(self):
        client = opener()
        while not self.done():
            at = round(time.monotonic() - self.started, 2)
            status, body = answer(client, self.url, self.host_header)
            with self.lock:
                self.requests += 1
                self.counts[str(status)] = self.counts.get(str(status), 0) + 1
                if not 200 <= status < 300:
                    self.failures.append({"at": at, "status": status, "detail": body[:200].decode("utf-8", "replace")})
                elif self.first_marked is None and self.marker in body:
                    self.first_marked = at
            time.sleep(PAUSE)

    def watch_command_lines(self):
        while not self.done():
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    args = cmdline.read_bytes()
                except OSError:
                    continue
                if self.secret in args:
                    self.secret_seen.append(args.replace(self.secret, b"<secret>").decode("utf-8", "replace")[:300])
            # A command an Ansible task runs lives longer than this.
            time.sleep(0.2)

    def run(self):
        threads = [threading.Thread(target=self.client) for _ in range(self.connections)]
        threads.append(threading.Thread(target=self.watch_command_lines))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {
            "connections": self.connections,
            "seconds": round(time.monotonic() - self.started, 1),
            "requests": self.requests,
            "counts": self.counts,
            "failures": self.failures[:50],
            "failed": len(self.failures),
            "first_marked": self.first_marked,
            "secret_on_command_lines": self.secret_seen[:10],
        }


def main(url, host_header, marker, secret_file, stop_file, result_file, connections=CONNECTIONS):
    result = Load(url, host_header, marker, secret_file, stop_file, int(connections)).run()
    # Whole or not at all: the test reads it as soon as it exists.
    partial = Path(result_file + ".partial")
    partial.write_text(json.dumps(result))
    partial.replace(result_file)


if __name__ == "__main__":
    main(*sys.argv[1:])
