"""A tiny HTTP server on loopback that serves fixed routes, for download tests."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def serve_routes(routes: dict[str, bytes], delay_s: float = 0.0, delays: dict[str, float] | None = None):
    """Serve `routes` (path -> body) on 127.0.0.1; unknown paths answer 404. Yields the base URL.

    Every answer waits `delay_s`, or the path's own entry in `delays`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
