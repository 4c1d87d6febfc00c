"""The teacher endpoint's HTTP layer: the standard library's ``ThreadingHTTPServer`` over an :class:`ExpertService`.

Why the standard library: the endpoint has four routes and JSON bodies, and answering is
serialised on the expert anyway (its random streams and the budget are one critical
section), so an async framework would add a dependency and nothing the clients can see.
It binds 127.0.0.1 by default; a body is read only up to :data:`MAX_BODY` bytes, after its
``Content-Length`` is checked.
"""

from __future__ import annotations

import json
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from noisy_expert_gym.serve.service import ExpertService, RequestError

#: The largest request body read, in bytes.
MAX_BODY = 16 << 20


class _Handler(BaseHTTPRequestHandler):
    server: ExpertHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "noisy-expert-gym"

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body, allow_nan=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, err: RequestError) -> None:
        self._send(err.status, err.body())

    def do_GET(self) -> None:
        svc = self.server.service
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/health":
            self._send(200, {})
        elif path == "/v1/models":
            self._send(200, svc.models())
        elif path == "/v1/budget":
            self._send(200, svc.budget())
        else:
            self._error(RequestError(f"no route GET {path or '/'}; routes: GET /health, GET /v1/models, "
                                     "GET /v1/budget, POST /v1/completions", None, 404, "NotFoundError"))

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path != "/v1/completions":
            self._discard()
            self._error(RequestError(f"no route POST {path or '/'}; POST /v1/completions answers", None, 404,
                                     "NotFoundError"))
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self._error(RequestError("a request needs a Content-Length header", None, 411))
            return
        if int(length) > MAX_BODY:
            self.close_connection = True
            self._error(RequestError(f"the request body has {length} bytes; at most {MAX_BODY}", None, 413))
            return
        raw = self.rfile.read(int(length))
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            self._error(RequestError(f"the request body is not valid JSON: {e}", None))
            return
        try:
            self._send(200, self.server.service.complete(body))
        except RequestError as e:
            self._error(e)
        except Exception as e:  # noqa: BLE001  an internal error is one JSON line, and the server stays up
            self._send(500, {"error": {"message": f"internal error: {type(e).__name__}: {e}", "type": "InternalError",
                                       "param": None, "code": 500}})

    def _discard(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= MAX_BODY:
            self.rfile.read(int(length))
        else:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")


class ExpertHTTPServer(ThreadingHTTPServer):
    """An :class:`ExpertService` on ``host:port`` (port 0: a free one, read back from ``server_address``)."""

    daemon_threads = True

    def __init__(self, service: ExpertService, host: str = "127.0.0.1", port: int = 8000,
                 verbose: bool = False) -> None:
        self.service, self.verbose = service, verbose
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. ``http://127.0.0.1:8000``."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def serve_in_thread(service: ExpertService, host: str = "127.0.0.1", port: int = 0
                    ) -> tuple[ExpertHTTPServer, threading.Thread]:
    """Start the endpoint in a daemon thread (tests, notebooks): ``(server, thread)``; stop it with
    ``server.shutdown(); server.server_close()``."""
    server = ExpertHTTPServer(service, host, port)
    thread = threading.Thread(target=server.serve_forever, name="neg-serve-expert", daemon=True)
    thread.start()
    return server, thread


__all__ = ["MAX_BODY", "ExpertHTTPServer", "HTTPStatus", "serve_in_thread"]
