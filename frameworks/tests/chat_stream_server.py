"""A local server speaking the OpenAI chat-completions streaming API (SSE), for the tests of a
framework's own OpenAI client: it writes its answer a piece at a time, each piece after the
first only once the test has released it (``release()``, after it read the previous delta on the
runner's stdout). Stdlib only; one answer for every request. ``hung_up`` is set when the client
closes the connection while the server waits to send a piece (a cancelled run must).

``stall=True`` plays a model server that hangs: after its pieces it sends nothing more and never
ends the stream, until the client closes the connection. Run as a script (``python
chat_stream_server.py --stall PIECE...``, for the worker's own tests) it sends its pieces at once,
prints ``{"url": ...}`` on a line, then ``hung up`` when a client closed its connection."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ChatStreamServer:
    def __init__(self, pieces: list[str], wait: float = 120, fail_with: str | None = None,
                 stall: bool = False):
        self.pieces = pieces
        self.stall = stall
        self.fail_with = fail_with  # after the pieces, an error in the stream instead of its end
        self.wait = wait
        self.gate = threading.Semaphore(0)
        self.requests: list[dict] = []
        self.error: str | None = None
        self.hung_up = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test's output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                server.requests.append({"path": self.path, "body": body})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()  # HTTP/1.0: the body ends when the connection closes
                for n, piece in enumerate(server.pieces):
                    if n and not self.released(n):
                        return
                    self.send(body, {"role": "assistant", "content": piece} if n == 0 else {"content": piece})
                if server.stall:  # a hung model: the stream stays open, silent, until the client leaves
                    while not self.hung_up():
                        pass
                    return
                if server.fail_with is not None:  # as the API reports an error mid-stream
                    if self.released(len(server.pieces)):
                        error = {"error": {"message": server.fail_with, "type": "server_error"}}
                        self.wfile.write(f"data: {json.dumps(error)}\n\n".encode())
                    return
                self.send(body, {}, finish="stop")
                self.wfile.write(b"data: [DONE]\n\n")

            def released(self, n) -> bool:
                """Wait for piece ``n``'s release; False (and why) if it never comes or the client left."""
                deadline = time.monotonic() + server.wait
                while not server.gate.acquire(timeout=0.05):
                    if self.hung_up(0):
                        return False
                    if time.monotonic() > deadline:
                        server.error = f"piece {n} was never released: the runner did not pass piece {n - 1} on"
                        return False
                return True

            def hung_up(self, wait: float = 1.0) -> bool:
                """True (and ``server.hung_up`` set) once the client closed the connection: an end
                of stream from it; waits up to ``wait`` seconds for that."""
                if not select.select([self.connection], [], [], wait)[0]:
                    return False
                if self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                    time.sleep(wait)  # more bytes from a client still there: not a hang-up
                    return False
                server.hung_up.set()
                return True

            def send(self, request, delta, finish=None):
                chunk = {"id": "chatcmpl-live", "object": "chat.completion.chunk", "created": 0,
                         "model": request.get("model", "live"),
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                if finish:
                    chunk["usage"] = {"prompt_tokens": 1, "completion_tokens": len(server.pieces), "total_tokens": 2}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def release(self) -> None:
        """Let the model write its next piece."""
        self.gate.release()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":
    import sys

    args = sys.argv[1:]
    stall = args[:1] == ["--stall"]
    pieces = args[stall:]
    server = ChatStreamServer(pieces, stall=stall)
    for _ in pieces:  # every piece released: they go out as fast as the client reads them
        server.release()
    print(json.dumps({"url": server.url}), flush=True)
    server.hung_up.wait()
    print("hung up", flush=True)
    sys.stdin.read()  # until the test closes its end (or kills this process)
