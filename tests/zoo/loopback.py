"""A bounded HTTP file server on 127.0.0.1 for the zoo tests (stands in for the release hosts).

Serves ``files`` (``{"/name": bytes}``) with ETag, ``Range`` / ``If-Range`` (206) unless
``ranges=False``, and test behaviours: ``drop[name] = n`` sends the full Content-Length but
closes the connection after ``n`` bytes (once), ``delay_s`` sleeps between chunks. Every request
is logged as ``(path, Range header)``; after ``max_requests`` requests it answers 503.
"""
import hashlib
import http.server
import threading
import time


class LoopbackServer:
    def __init__(self, max_requests=40, timeout_s=60):
        self.files, self.drop, self.requests = {}, {}, []
        self.ranges, self.delay_s, self.max_requests = True, 0.0, max_requests
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                if len(server.requests) > server.max_requests:
                    return self.send_error(503, "request budget of the test server used up")
                data = server.files.get(self.path)
                if data is None:
                    return self.send_error(404)
                etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
                start, rng = 0, self.headers.get("Range")
                if server.ranges and rng and rng.startswith("bytes=") and self.headers.get("If-Range") == etag:
                    start = int(rng[len("bytes="):].split("-")[0])
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("ETag", etag)
                self.end_headers()
                body = data[start:]
                cut = server.drop.pop(self.path, None)
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                for i in range(0, len(body), 4096):
                    self.wfile.write(body[i:i + 4096])
                    if server.delay_s:
                        time.sleep(server.delay_s)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = timeout_s
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def gets(self, path):
        return [r for r in self.requests if r[0] == path]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)
