"""Copied into the balancer's host by test_growth.py: keeps CONNECTIONS
clients requesting a path through HAProxy on 127.0.0.1 and records, for each
answer, when it came, its status, which app host sent it (from /served-by/'s
JSON) and whether it carries MARKER. Bounded: it stops at the stop file, at
DEADLINE seconds or after MAX_REQUESTS, whichever comes first.

    python3 balanced_load.py URL HOST_HEADER MARKER STOP_FILE RESULT_FILE CONNECTIONS
"""

import json
import sys
import threading
import time
from pathlib import Path

from http_answer import answer, opener

# Between one answer and the next request on a connection: enough clients
# that some request meets every moment of the rollout, sparse enough to
# leave the rollout its CPU.
PAUSE = 1.0
DEADLINE = 1200.0
MAX_REQUESTS = 200_000


class Load:
    def __init__(self, url, host_header, marker, stop_file, connections):
        self.url = url
        self.host_header = host_header
        self.marker = marker.encode()
        self.stop_file = Path(stop_file)
        self.connections = connections
        self.started = time.monotonic()
        # The hosts share the kernel's clock: a test compares its own
        # moments (read with `date +%s.%N`) with this one.
        self.started_wall = time.time()
        self.lock = threading.Lock()
        self.answers = []

    def done(self):
        return (
            self.stop_file.exists() or time.monotonic() - self.started > DEADLINE or len(self.answers) >= MAX_REQUESTS
        )

    def client(self):
        client = opener()
        while not self.done():
            at = time.monotonic() - self.started
            status, body = answer(client, self.url, self.host_header)
            hostname = None
            if body.startswith(b"{"):
                try:
                    hostname = json.loads(body).get("hostname")
                except ValueError:
                    pass
            record = {"at": round(at, 3), "status": status, "host": hostname, "marked": self.marker in body}
            if not 200 <= status < 300:
                record["detail"] = body[:200].decode("utf-8", "replace")
            with self.lock:
                self.answers.append(record)
            time.sleep(PAUSE)

    def run(self):
        threads = [threading.Thread(target=self.client) for _ in range(self.connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {
            "started": self.started_wall,
            "seconds": round(time.monotonic() - self.started, 1),
            "answers": sorted(self.answers, key=lambda answer: answer["at"]),
        }


def main(url, host_header, marker, stop_file, result_file, connections):
    result = Load(url, host_header, marker, stop_file, int(connections)).run()
    # Whole or not at all: the test reads it as soon as it is there.
    partial = Path(result_file + ".partial")
    partial.write_text(json.dumps(result))
    partial.replace(result_file)


if __name__ == "__main__":
    main(*sys.argv[1:])
