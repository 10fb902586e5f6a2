from django.conf import settings
from django.conf.urls.static import static
from django.contrib.auth import views as auth_views
from django.urls import path
from notes import views

urlpatterns = [
    path("", views.home, name="home"),
    path("notes/", views.notes, name="notes"),
    path("upload/", views.upload, name="upload"),
    path("served-by/", views.served_by, name="served-by"),
    path("healthz", views.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(template_name="notes/login.html"), name="login"),
    path("whoami/", views.whoami, name="whoami"),
]

if settings.DEBUG:
    # Only for runserver; in production Apache serves MEDIA_ROOT itself.
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
