"""A tiny HTTP server on loopback that serves fixed routes, for download tests."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class BaseUrl(str):
    """The server's base URL, which also lists the paths requested so far."""

    def __new__(cls, url: str, requests: list[str]):
        value = super().__new__(cls, url)
        value.requests = requests
        return value


@contextmanager
def serve_routes(
    routes: dict[str, bytes],
    delay_s: float = 0.0,
    delays: dict[str, float] | None = None,
    redirects: dict[str, str] | None = None,
):
    """Serve `routes` (path with its query -> body) on 127.0.0.1; `redirects` (path -> Location)
    answer 302; unknown paths answer 404. Yields the base URL.

    Every answer waits `delay_s`, or the path's own entry in `delays`. Requested paths are kept
    in the yielded URL's `.requests` list."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            seen.append(self.path)
            if self.path in (redirects or {}):
                self.send_response(302)
                self.send_header("Location", redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = routes.get(self.path)
            if body is None:
                self.send_error(404)
                return
            wait = (delays or {}).get(self.path, delay_s)
            if wait:
                time.sleep(wait)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    seen: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield BaseUrl(f"http://127.0.0.1:{server.server_address[1]}", seen)
    finally:
        server.shutdown()
        server.server_close()
