"""Views exercised through every front end (and by the benchmark)."""

import hashlib
import os
import time

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

CHUNK = 64 * 1024


def _json(data, status=200):
    return JsonResponse(data, status=status, json_dumps_params={"ensure_ascii": False})


def _hash_stream(request):
    """Read the request body in chunks; return (length, sha256 hexdigest)."""
    digest = hashlib.sha256()
    total = 0
    while True:
        block = request.read(CHUNK)
        if not block:
            break
        total += len(block)
        digest.update(block)
    return total, digest.hexdigest()


def hello(request):
    """The benchmark view: a small fixed response through the full middleware stack."""
    return HttpResponse(b"Hello, world!\n", content_type="text/plain")


@csrf_exempt
def echo(request, rest=None):
    meta = request.META
    raw = meta.get("testsite.raw_environ", {})
    data = {
        "method": request.method,
        "path": request.path,
        "path_info": request.path_info,
        "full_path": request.get_full_path(),
        "script_name": meta.get("SCRIPT_NAME"),
        "raw_script_name": raw.get("SCRIPT_NAME"),
        "raw_path_info": raw.get("PATH_INFO"),
        "query_string": meta.get("QUERY_STRING"),
        "GET": {k: request.GET.getlist(k) for k in request.GET},
        "gateway_interface": meta.get("GATEWAY_INTERFACE"),
        "server_protocol": meta.get("SERVER_PROTOCOL"),
        "request_uri": meta.get("REQUEST_URI"),
        "has_authorization": "HTTP_AUTHORIZATION" in meta,
        "authorization": meta.get("HTTP_AUTHORIZATION"),
        "content_type": meta.get("CONTENT_TYPE"),
        "content_length": meta.get("CONTENT_LENGTH"),
        "x_test": meta.get("HTTP_X_TEST"),
        "url_scheme": meta.get("wsgi.url_scheme"),
        "multithread": meta.get("wsgi.multithread"),
        "multiprocess": meta.get("wsgi.multiprocess"),
        "run_once": meta.get("wsgi.run_once"),
        "pid": os.getpid(),
    }
    if request.method in ("POST", "PUT", "PATCH"):
        data["body_length"], data["body_sha256"] = _hash_stream(request)
    return _json(data)


@csrf_exempt
def form(request):
    if request.method != "POST":
        return _json({"error": "POST only"}, status=405)
    return _json(
        {
            "method": request.method,
            "content_type": request.content_type,
            "POST": {k: request.POST.getlist(k) for k in request.POST},
            "pid": os.getpid(),
        }
    )


@csrf_exempt
def upload(request):
    """Receive a large raw body, hashing it as it streams in."""
    started = time.monotonic()
    length, sha = _hash_stream(request)
    return _json(
        {
            "content_length": request.META.get("CONTENT_LENGTH"),
            "body_length": length,
            "body_sha256": sha,
            "seconds": round(time.monotonic() - started, 3),
            "pid": os.getpid(),
        }
    )


def stream(request):
    """Stream ``n`` chunks of ``size`` bytes, ``delay`` seconds apart."""
    count = int(request.GET.get("n", "5"))
    delay = float(request.GET.get("delay", "0.3"))
    size = int(request.GET.get("size", "64"))

    def chunks():
        for i in range(count):
            if i:
                time.sleep(delay)
            head = f"chunk {i} of {count} "
            yield (head + "x" * max(0, size - len(head) - 1) + "\n").encode()

    response = StreamingHttpResponse(chunks(), content_type="text/plain")
    response["X-Accel-Buffering"] = "no"
    response["Cache-Control"] = "no-cache"
    return response


def boom(request):
    token = request.GET.get("token", "no-token")
    raise RuntimeError(f"testsite boom {token}")


def slow(request):
    """Sleep ``t`` seconds.  With ``mark=NAME`` and TESTSITE_MARK_DIR set, first create the file
    NAME there, so a test can tell when the request has reached the application."""
    seconds = min(float(request.GET.get("t", "1")), 30.0)
    mark, mark_dir = request.GET.get("mark"), os.environ.get("TESTSITE_MARK_DIR")
    if mark and mark_dir and mark.isalnum():
        with open(os.path.join(mark_dir, mark), "w") as fh:
            fh.write(str(os.getpid()))
    time.sleep(seconds)
    return _json({"slept": seconds, "pid": os.getpid()})
