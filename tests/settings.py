"""Settings for the test suite: the production settings with short timers.

Only values change here, never code paths. The REDIS_PREFIX is unique per run
so that concurrent runs on one Redis cannot see each other's channels, cache
keys or Celery queues; it is put in the environment so that daphne and
worker processes started by the tests inherit it.
"""

import os

os.environ.setdefault("REDIS_PREFIX", f"test{os.getpid()}")
os.environ.setdefault("PRESENCE_HEARTBEAT_INTERVAL", "0.5")
os.environ.setdefault("PRESENCE_TIMEOUT", "2")
os.environ.setdefault("THROTTLE_USER", "100000/min")
os.environ.setdefault("THROTTLE_AUTH", "100000/min")
os.environ.setdefault("THROTTLE_REPORT", "100000/min")
os.environ.setdefault("THROTTLE_LOGIN_FAILURES", "100000/min")
os.environ.setdefault("CHAT_HEAD_CHECK", "1")

from chatproject.settings import *  # noqa: F403

# Hashing passwords properly costs ~0.3 s each; the tests create hundreds of users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
