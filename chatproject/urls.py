from django.contrib import admin
from django.urls import include, path, re_path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from chatproject.converters import IdConverter
from chatproject.health import healthz
from chatproject.middleware import api_not_found

register_converter(IdConverter, "id")

api_v1 = [
    path("", include("accounts.api.urls")),
    path("", include("messaging.api.urls")),
    path("", include("presence.api.urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    re_path(r"^api/(?P<rest>.*)$", api_not_found),
    path("", include("accounts.urls")),
]

# JSON for /api/ paths, Django's pages elsewhere (used when DEBUG is off).
handler404 = "chatproject.api_errors.page_not_found"
handler500 = "chatproject.api_errors.server_error"
