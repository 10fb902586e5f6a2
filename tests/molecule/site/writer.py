"""Copied into the host by molecule/shared/switch.yml: writes notes through
Apache, to the site's vhost at BASE (http://ADDRESS, or https://NAME where
the name resolves to the vhost) under its NAME, until a stop file appears or
its deadline passes, and counts the answers. Bounded: one request at a time,
at most MAX_REQUESTS, at most DEADLINE seconds.

    python3 writer.py BASE NAME STOP_FILE RESULT_FILE
"""

import http.client
import json
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

MAX_REQUESTS = 20_000
# The switch's play takes 9 minutes on a busy 2-core machine; the writes must
# outlast it (the stop file ends them sooner).
DEADLINE = 1500.0


def main(base, name, stop_file, result_file):
    # The test hosts' certificates are self-signed; the writer counts answers.
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(CookieJar()), urllib.request.HTTPSHandler(context=insecure)
    )
    scheme = urllib.parse.urlsplit(base).scheme
    page = opener.open(urllib.request.Request(base + "/notes/", headers={"Host": name}), timeout=30).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    counts = {}
    errors = {}
    failed_at = []
    started = time.monotonic()
    stopped_by = "max_requests"
    for number in range(MAX_REQUESTS):
        if Path(stop_file).exists():
            stopped_by = "stop_file"
            break
        if time.monotonic() - started > DEADLINE:
            stopped_by = "deadline"
            break
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "text": f"switch-{number}"}).encode()
        request = urllib.request.Request(
            base + "/notes/", data=body, headers={"Host": name, "Referer": f"{scheme}://{name}/notes/"}
        )
        sent = time.monotonic()
        try:
            with opener.open(request, timeout=30) as response:
                response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        # A restart may cut a connection, or the body of the redirect
        # that follows a write, or answer half a status line.
        except (OSError, http.client.HTTPException) as error:
            status = 0
            errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
        counts[str(status)] = counts.get(str(status), 0) + 1
        if status != 200:
            failed_at.append((round(time.monotonic() - started, 2), time.strftime("%H:%M:%S", time.gmtime())))
        # Four writes a second time a restart to a quarter second. Where a
        # write costs a process (cgi: the POST and the page it redirects to
        # start Django twice, half a CPU-second), the writer waits twice as
        # long as the write took: it holds about a third of a core, and the
        # switch's play keeps the rest of a busy machine. Never more than two
        # seconds: after a write that timed out, the next one still comes soon.
        time.sleep(min(2.0, max(0.25, 2 * (time.monotonic() - sent))))
    # Whole or not at all: the test reads it as soon as it is there.
    partial = Path(result_file + ".partial")
    partial.write_text(
        json.dumps(
            {
                "counts": counts,
                # What the answers counted as 0 were: the exceptions, by class.
                "errors": errors,
                # Only the stop file means that the writes lasted the whole switch.
                "stopped_by": stopped_by,
                "seconds": round(time.monotonic() - started, 1),
                # From the first failed write to the last, in seconds.
                "failure_window": round(failed_at[-1][0] - failed_at[0][0], 2) if failed_at else 0,
                # The same in UTC, to set beside the play's task times.
                "failures_utc": [failed_at[0][1], failed_at[-1][1]] if failed_at else [],
            }
        )
    )
    partial.replace(result_file)


if __name__ == "__main__":
    main(*sys.argv[1:])
