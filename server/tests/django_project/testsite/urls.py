from django.urls import path, re_path

from . import views

urlpatterns = [
    path("hello/", views.hello),
    path("form/", views.form),
    path("upload/", views.upload),
    path("stream/", views.stream),
    path("boom/", views.boom),
    path("slow/", views.slow),
    re_path(r"^echo(?P<rest>/.*)?$", views.echo),
]
