"""A real WebSocket client (the `websockets` package) driven line by line, for tests/ws.rs.

Each line on stdin is one JSON command; each answer is one JSON line on stdout:

  {"op": "connect", "url": "...", "headers": {...}}  -> {"ok": true} | {"error": "...", "status": n}
  {"op": "send", "text": "..."}                     -> {"ok": true}
  {"op": "recv", "timeout": s}                      -> {"text": "..."} | {"closed": {"code", "reason"}}
                                                       | {"timeout": true}
  {"op": "close", "code": n}                        -> {"closed": {"code", "reason"}} (the server's echo)
  {"op": "drop"}                                    -> {"ok": true} (the TCP connection cut, no close)
  {"op": "frames"}                                  -> {"frames": [[opcode, bytes, fin], ...]} received
                                                       since the last call (pings included)
  {"op": "open_many", "url": "...", "n": n}         -> {"opened": k} | {"opened": k, "status": s}
                                                       (n more sockets, held open; stops at a refusal)

Frames are seen through the library's own debug log of each frame it reads ("< %s", frame),
so the client stays the library's, unchanged.
"""

import asyncio
import json
import logging
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

FRAMES = []


class FrameLog(logging.Handler):
    def emit(self, record):
        if record.msg == "< %s" and record.args:
            f = record.args[0]
            if hasattr(f, "opcode"):
                FRAMES.append([f.opcode.name, len(f.data), f.fin])


def closed_of(ws):
    rcvd = ws.protocol.close_rcvd
    if rcvd is None:
        return {"code": None, "reason": ""}
    return {"code": rcvd.code, "reason": rcvd.reason}


async def main():
    logger = logging.getLogger("ws-driver")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(FrameLog())
    logger.propagate = False
    ws = None
    held = []
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "connect":
            try:
                ws = await connect(
                    cmd["url"],
                    additional_headers=cmd.get("headers") or {},
                    logger=logger,
                    # The server's pings are what is tested: the client sends none of its own.
                    ping_interval=None,
                    max_size=None,
                    open_timeout=10,
                )
                say({"ok": True})
            except InvalidStatus as e:
                say({"error": str(e), "status": e.response.status_code,
                     "body": e.response.body.decode("utf-8", "replace")})
            except Exception as e:  # noqa: BLE001 - the test reads the message
                say({"error": repr(e)})
        elif op == "send":
            await ws.send(cmd["text"])
            say({"ok": True})
        elif op == "recv":
            try:
                text = await asyncio.wait_for(ws.recv(), cmd.get("timeout", 30))
                say({"text": text})
            except asyncio.TimeoutError:
                say({"timeout": True})
            except ConnectionClosed:
                say({"closed": closed_of(ws)})
        elif op == "close":
            await ws.close(code=cmd.get("code", 1000), reason=cmd.get("reason", ""))
            say({"closed": closed_of(ws)})
        elif op == "drop":
            ws.transport.abort()
            say({"ok": True})
        elif op == "open_many":
            answer = {}
            for _ in range(cmd["n"]):
                try:
                    held.append(await connect(cmd["url"], ping_interval=None, open_timeout=10))
                except InvalidStatus as e:
                    answer = {"status": e.response.status_code,
                              "body": e.response.body.decode("utf-8", "replace")}
                    break
            say({"opened": len(held), **answer})
        elif op == "frames":
            got = list(FRAMES)
            FRAMES.clear()
            say({"frames": got})
        else:
            say({"error": f"unknown op {op}"})


asyncio.run(main())
