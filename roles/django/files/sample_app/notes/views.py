import hashlib
import logging
import os
import platform
import pwd

import django
from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from .forms import NoteForm, UploadForm
from .models import Note, Upload

logger = logging.getLogger(__name__)


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303


@require_GET
def home(request):
    return render(request, "notes/home.html")


@require_http_methods(["GET", "POST"])
def notes(request):
    if request.method == "POST":
        form = NoteForm(request.POST)
        if form.is_valid():
            note = form.save()
            logger.info("Stored note %s", note.pk)
            return HttpResponseSeeOther(reverse("notes"))
    else:
        form = NoteForm()
    context = {"form": form, "notes": Note.objects.all()[:100]}
    return render(request, "notes/notes.html", context)


@require_http_methods(["GET", "POST"])
def upload(request):
    if request.method == "POST":
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            uploaded = form.cleaned_data["file"]
            digest = hashlib.sha256()
            for chunk in uploaded.chunks():
                digest.update(chunk)
            stored = Upload.objects.create(file=uploaded, size=uploaded.size, sha256=digest.hexdigest())
            logger.info("Stored upload %s (%d bytes)", stored.file.name, stored.size)
            return render(request, "notes/upload_done.html", {"upload": stored})
    else:
        form = UploadForm()
    return render(request, "notes/upload.html", {"form": form})


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def _user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _title(pid):
    """argv[0], which servers rename: mod_wsgi's display-name shows here."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0", 1)[0].decode("utf-8", "replace").strip() or None
    except OSError:
        return None


def _digest(value):
    return hashlib.sha256(value.encode("latin-1")).hexdigest() if value else None


@require_GET
def served_by(request):
    meta = request.META
    uid = os.getuid()
    ppid = os.getppid()
    return JsonResponse(
        {
            "gateway_interface": meta.get("GATEWAY_INTERFACE"),
            "wsgi_multithread": bool(meta.get("wsgi.multithread")),
            "wsgi_multiprocess": bool(meta.get("wsgi.multiprocess")),
            "wsgi_run_once": bool(meta.get("wsgi.run_once")),
            "mod_wsgi_process_group": meta.get("mod_wsgi.process_group"),
            "mod_wsgi_application_group": meta.get("mod_wsgi.application_group"),
            "server_software": meta.get("SERVER_SOFTWARE"),
            "url_scheme": meta.get("wsgi.url_scheme"),
            "is_secure": request.is_secure(),
            "wsgate_front_end": meta.get("wsgate.front_end"),
            "wsgate_relay_backend": meta.get("wsgate.relay_backend"),
            # A digest, not the credentials: proves the header arrived whole.
            "authorization_sha256": _digest(meta.get("HTTP_AUTHORIZATION")),
            "allowed_hosts": settings.ALLOWED_HOSTS,
            "media_root": str(settings.MEDIA_ROOT),
            "cwd": os.getcwd(),
            "pid": os.getpid(),
            "process_name": _comm("self"),
            "process_title": _title("self"),
            "ppid": ppid,
            "parent_process_name": _comm(ppid),
            "python_version": platform.python_version(),
            "django_version": django.get_version(),
            "uid": uid,
            "user": _user_name(uid),
            # Which app host answered, behind a load balancer.
            "hostname": platform.node(),
        }
    )


@require_GET
def whoami(request):
    """Who the session says the visitor is, and which host read it."""
    user = request.user.get_username() if request.user.is_authenticated else None
    return JsonResponse({"user": user, "hostname": platform.node()})


@require_GET
def healthz(request):
    return HttpResponse("ok", content_type="text/plain")
