"""A local stand-in for Google's OAuth token endpoint and FCM's HTTP v1 API.

Only Google's servers are faked, at the HTTP boundary: pyfcm and google-auth
run their real code against it (a real JWT-bearer token exchange with a fresh
RSA key, real `messages:send` requests).

Tokens steer the answer: `gone-…` answers 404 UNREGISTERED, `busy-…` answers
503 the first time and 200 after, anything else 200.
"""

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PROJECT_ID = "chat-test-project"


@dataclass
class FakeFCM:
    server: ThreadingHTTPServer
    sent: list[dict] = field(default_factory=list)
    token_requests: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def tokens_sent(self) -> list[str]:
        with self.lock:
            return [m["message"]["token"] for m in self.sent]

    def write_service_account(self, directory: Path) -> Path:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        path = directory / "service-account.json"
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": PROJECT_ID,
                    "private_key_id": "test-key",
                    "private_key": pem,
                    "client_email": f"push@{PROJECT_ID}.iam.gserviceaccount.com",
                    "client_id": "1",
                    "token_uri": f"{self.url}/token",
                }
            )
        )
        return path


def start_fake_fcm() -> FakeFCM:
    state: FakeFCM

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            if self.path == "/token":
                with state.lock:
                    state.token_requests += 1
                assert b"assertion=" in raw
                self._answer(
                    200, {"access_token": "fake-access", "expires_in": 3600, "token_type": "Bearer"}
                )
                return
            expected = f"/v1/projects/{PROJECT_ID}/messages:send"
            if self.path != expected or self.headers.get("Authorization") != "Bearer fake-access":
                self._answer(401, {"error": {"status": "UNAUTHENTICATED"}})
                return
            message = json.loads(raw)
            token = message["message"]["token"]
            if token.startswith("gone-"):
                self._answer(
                    404,
                    {"error": {"status": "NOT_FOUND", "details": [{"errorCode": "UNREGISTERED"}]}},
                )
                return
            if token.startswith("busy-"):  # refused once, then taken
                with state.lock:
                    seen = state.failures.get(token, 0)
                    state.failures[token] = seen + 1
                if seen == 0:
                    self._answer(503, {"error": {"status": "UNAVAILABLE"}})
                    return
            with state.lock:
                state.sent.append(message)
                number = len(state.sent)
            self._answer(200, {"name": f"projects/{PROJECT_ID}/messages/{number}"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state = FakeFCM(server=server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state
