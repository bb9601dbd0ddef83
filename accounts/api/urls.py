from django.urls import path

from accounts.api import views

urlpatterns = [
    path("auth/register/", views.RegisterView.as_view(), name="api-register"),
    path("auth/token/", views.TokenView.as_view(), name="api-token"),
    path("auth/logout/", views.LogoutView.as_view(), name="api-logout"),
    path("auth/logout-all/", views.LogoutAllView.as_view(), name="api-logout-all"),
    path("auth/password/", views.PasswordView.as_view(), name="api-password"),
    path("me/", views.MeView.as_view(), name="api-me"),
    path("users/", views.UserListView.as_view(), name="api-users"),
    path("devices/", views.DeviceListView.as_view(), name="api-devices"),
    path(
        "devices/unregister/", views.DeviceUnregisterView.as_view(), name="api-devices-unregister"
    ),
    path("devices/<int:device_id>/", views.DeviceDetailView.as_view(), name="api-device"),
]
