"""Minimal settings for baseline (a): the Channels tutorial shape on channels_redis.

Only what the tutorial's chat needs: channels, daphne, the core Redis layer with
its defaults (capacity 100, expiry 60). One deviation, applied to every system in
the benchmark alike: redis-py 8's 5 s socket timeout is turned off, or every
consumer idle for 5 s dies with 1011 (channels_redis #422), which would make the
idle-connection scenario meaningless.
"""

import os

SECRET_KEY = os.environ.get("SECRET_KEY", "bench-tutorial-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["daphne", "channels"]
ROOT_URLCONF = None
ASGI_APPLICATION = "bench.baselines.tutorial_asgi.application"
USE_TZ = True
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [
                {
                    "address": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/12"),
                    "socket_timeout": None,
                }
            ],
            "prefix": os.environ.get("REDIS_PREFIX", "benchtut") + ":asgi",
        },
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"handlers": [], "level": "WARNING"},
}
