"""A local Slack-compatible incoming-webhook receiver, for tests and the demo.

    with WebhookReceiver() as hook:
        hook.fail_next(429, headers={"Retry-After": "1"})
        SlackWebhook(hook.url).post({"text": "hi"})
        assert hook.payloads == [{"text": "hi"}]

Like Slack it answers 200 "ok", 400 "invalid_payload" for a body that is not JSON with `text` or
`blocks`, and 404 "no_service" for another path. It listens on 127.0.0.1 only and prints nothing.
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_PATH = "/services/T000/B000/XXXX"


@dataclass(frozen=True)
class _Scripted:
    """One scripted answer: a status, sent after an optional stall."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""
    stall: float = 0.0


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the base class
        """Silence the per-request stderr log."""

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        receiver = self.server.receiver
        scripted = receiver._next_scripted()  # noqa: SLF001 - the receiver owns its handler
        if scripted is not None:
            time.sleep(scripted.stall)
            self._answer(scripted.status, scripted.body or _default_body(scripted.status), scripted.headers)
            return
        if self.path != receiver.path:
            self._answer(404, "no_service")
            return
        payload = _parse(raw)
        if payload is None:
            self._answer(400, "invalid_payload")
            return
        receiver._received(payload)  # noqa: SLF001
        self._answer(200, "ok")

    def _answer(self, status: int, body: str, headers: Mapping[str, str] | None = None) -> None:
        data = body.encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout fired during a scripted stall)


def _default_body(status: int) -> str:
    return {429: "rate_limited", 400: "invalid_payload", 403: "invalid_token", 404: "no_service"}.get(
        status, "internal_error" if status >= 500 else "error"
    )


def _parse(raw: bytes) -> dict[str, Any] | None:
    """The JSON body when it is an object with `text` or `blocks`, else None."""
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if isinstance(payload, dict) and (payload.get("text") or payload.get("blocks")):
        return payload
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: WebhookReceiver


class WebhookReceiver:
    """Context manager running a Slack-like webhook endpoint on 127.0.0.1 (random port) in a thread."""

    def __init__(self, path: str = DEFAULT_PATH) -> None:
        self.path = path
        self.payloads: list[dict[str, Any]] = []
        self.attempts = 0  # every POST received, including scripted failures
        self._script: deque[_Scripted] = deque()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the receiver is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.path}"

    def fail_next(self, status: int, count: int = 1, headers: Mapping[str, str] | None = None, body: str = "") -> None:
        """Answer the next `count` POSTs with `status` (and `headers`, e.g. Retry-After) before succeeding."""
        with self._lock:
            self._script.extend(_Scripted(status, dict(headers or {}), body) for _ in range(count))

    def stall_next(self, seconds: float, count: int = 1) -> None:
        """Hold the next `count` POSTs for `seconds` (to make clients time out), then answer 504 unrecorded."""
        with self._lock:
            self._script.extend(_Scripted(504, stall=seconds) for _ in range(count))

    def recover(self) -> None:
        """End a scripted outage: forget the failures not yet served."""
        with self._lock:
            self._script.clear()

    def _next_scripted(self) -> _Scripted | None:
        with self._lock:
            self.attempts += 1
            return self._script.popleft() if self._script else None

    def _received(self, payload: dict[str, Any]) -> None:
        with self._lock:
            self.payloads.append(payload)

    def start(self) -> WebhookReceiver:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.receiver = self
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="webhook-receiver", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
