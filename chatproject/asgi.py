"""The one ASGI application: HTTP (Django + DRF) and the chat WebSocket."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")

# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from accounts.ws_auth import WebSocketAuthMiddleware  # noqa: E402
from messaging.routing import websocket_urlpatterns  # noqa: E402

chat_sockets = URLRouter(websocket_urlpatterns)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Ours decides, by the token and the Origin, who the socket is; only a
        # browser's session cookie goes through Channels' session user lookup.
        "websocket": WebSocketAuthMiddleware(
            chat_sockets, browser=AuthMiddlewareStack(chat_sockets)
        ),
    }
)

# What is loaded by now (Django, DRF, Twisted, the apps: ~130k objects) lives
# as long as the process: keep it out of the cyclic collector's scans. A full
# collection walked all of it and paused the event loop ~100 ms, which was the
# p99 of a 1,000 msg/s run (docs/benchmarks.md, "Sessions 4 and 5"). Collect
# first: start-up's garbage must not be frozen with it.
gc.collect()
gc.freeze()
