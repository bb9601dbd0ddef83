from django.urls import path

from presence.api.views import PresenceView

urlpatterns = [path("presence/", PresenceView.as_view(), name="presence")]
