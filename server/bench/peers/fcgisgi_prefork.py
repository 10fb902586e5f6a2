"""fcgisgi 0.2.3 serving the test site with a fixed number of processes.

fcgisgi is one asyncio process running WSGI calls in a thread pool (max_workers).
To give it the same processes x threads budget as the others, this launcher binds the
unix socket, forks PROCESSES children and hands each the listening socket as fd 0, the
way mod_fcgid does, which fcgisgi supports (run_wsgi_server without bind_address).

usage: fcgisgi_prefork.py SOCKET_PATH PROCESSES THREADS
"""

import asyncio
import os
import signal
import socket
import sys

from fcgisgi import run_wsgi_server
from testsite.wsgi import application


def child(listener: socket.socket, threads: int) -> None:
    os.dup2(listener.fileno(), 0)
    listener.close()
    asyncio.run(run_wsgi_server(application, max_workers=threads))


def main() -> None:
    sock_path, processes, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    os.chmod(sock_path, 0o660)
    listener.listen(128)
    pids = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:
            try:
                child(listener, threads)
            finally:
                os._exit(0)
        pids.append(pid)
    listener.close()

    def stop(signum, frame):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


if __name__ == "__main__":
    main()
