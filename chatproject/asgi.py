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
from chatproject import autobahn_logs, write_through  # noqa: E402
from messaging import chat_servers  # noqa: E402
from messaging.routing import websocket_urlpatterns  # noqa: E402

write_through.install()
autobahn_logs.install()
chat_servers.install()

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

# Each socket's waiting objects (the future its next frame will resolve, the
# task parked on it) outlive a young collection whenever that socket is quiet
# for a second, so with thousands of sockets they pour into the oldest
# generation, and Python's default thresholds (700, 10, 10) then ran a full
# collection over every socket's objects every ~6 s: 200-380 ms pauses with
# 2,000 sockets, the p99 of a 1,000-pair run. Young collections every 20,000
# net allocations promote fewer of them, and a full one waits for 100 middle
# ones: none ran during the holds of a 1,000-pair run and the peak RSS did not
# move (docs/benchmarks.md, "Session 8"). What a full collection is for here,
# closed sockets' cycles, gets one per 1,000 closed sockets instead
# (messaging.socket_memory.socket_closed).
gc.set_threshold(20_000, 20, 100)
