"""Copied beside the load scripts into a test host: one request as they
make it, without a proxy, answered by a status and a body. A connection that
failed answers 0 with the error as its body."""

import urllib.error
import urllib.request


def opener():
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answer(client, url, host_header, timeout=60):
    request = urllib.request.Request(url, headers={"Host": host_header} if host_header else {})
    try:
        with client.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""
    except OSError as error:
        return 0, str(error).encode()
