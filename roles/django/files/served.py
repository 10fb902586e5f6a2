"""Whether Apache serves the site: one GET of a path, and of a static file,
through the web server as a visitor would reach it, following redirects
that stay on the site. Prints the statuses as JSON; exits 1 unless both
are 2xx (the file 200).

    served.py --address A --host H [--path P] [--asset URL] [--port N] [--https-port N]

It connects to the address the site's vhost is bound to (cPanel binds an
account's vhosts to the account's IP, so 127.0.0.1 reaches another vhost)
and names the site both in the Host header and, over HTTPS, in SNI, so
that a server with several TLS sites answers with this one. Runs as root
with the host's own Python: standard library only, Python 3.6 and later.

A release's first request may start the app (a daemon process, a worker):
until --wait seconds have passed, a request that gets no answer, or 502,
503 or 504 from Apache, is made again. The JSON says how long the site took
and how many tries.
"""

import argparse
import http.client
import json
import socket
import ssl
import sys
import time
import urllib.parse

# Apache's answers while the app behind it is not up yet.
NOT_UP_YET = {502, 503, 504}


class _TLSConnection(http.client.HTTPSConnection):
    """HTTPS to an address, naming the site in SNI rather than the address.
    The certificate is not verified: a new site's may be self-signed."""

    def __init__(self, address, port, site, timeout):
        super().__init__(address, port, timeout=timeout, context=ssl._create_unverified_context())
        self._site = site

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._site)


def get(args, path, timeout):
    scheme, port = "http", args.port
    for _ in range(5):
        if scheme == "https":
            connection = _TLSConnection(args.address, port, args.host, timeout)
        else:
            connection = http.client.HTTPConnection(args.address, port, timeout=timeout)
        try:
            connection.request("GET", path, headers={"Host": args.host})
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
        location = response.getheader("Location", "")
        if response.status not in (301, 302, 303, 307, 308) or not location:
            break
        target = urllib.parse.urlsplit(location)
        if target.hostname not in (None, args.host):
            break
        scheme = target.scheme or scheme
        port = target.port or (args.https_port if scheme == "https" else args.port)
        path = urllib.parse.urlunsplit(("", "", target.path or "/", target.query, ""))
    return response.status


def answer(args, path):
    """The status of path once the site answers, the seconds and tries it
    took, and why the last try had no answer (empty if it had one)."""
    started = time.monotonic()
    deadline = started + args.wait
    tries = 0
    while True:
        tries += 1
        try:
            status, error = get(args, path, max(1.0, deadline - time.monotonic())), ""
        except (OSError, http.client.HTTPException) as failure:
            status, error = None, f"{type(failure).__name__}: {failure}"
        left = deadline - time.monotonic()
        if (status is not None and status not in NOT_UP_YET) or left <= 0:
            return status, round(time.monotonic() - started, 1), tries, error
        time.sleep(min(1.0, left))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", required=True, help="the address the site's vhost is bound to")
    parser.add_argument("--host", required=True, help="the site's name")
    parser.add_argument("--path", default="/")
    parser.add_argument("--asset", default="", help="a static file the page uses")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--https-port", type=int, default=443)
    parser.add_argument("--wait", type=float, default=120, help="seconds the site may take to answer")
    args = parser.parse_args(argv)
    status, seconds, tries, error = answer(args, args.path)
    result = {"status": status, "seconds": seconds, "tries": tries, "error": error}
    result.update(asset=args.asset, asset_status=None, asset_error="")
    served = status is not None and 200 <= status < 300
    if args.asset and served:
        result["asset_status"], _, _, result["asset_error"] = answer(args, args.asset)
        served = result["asset_status"] == 200
    print(json.dumps(result))
    return 0 if served else 1


if __name__ == "__main__":
    sys.exit(main())
