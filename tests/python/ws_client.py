"""A WebSocket client for the tunnel tests (Python's `websockets`), printing one JSON
object with what it saw.

Run: python ws_client.py SCENARIO URL [AUTHORIZATION]
  echo    subprotocols offered, text and binary both ways, a 1 MB message, then asks
          the server to close with 4001 and reports the close code received
  die     asks the upstream to die and reports how the connection ended
  status  only opens the connection and reports the refusal status, if any
  idle    sends one message, then waits (up to 20 s) for the connection to be closed
  chatty  sends a message every 0.3 s for 3 s, counting the echoes, then waits as idle
"""

import asyncio
import json
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


def closed(e: ConnectionClosed) -> dict:
    return {"close_code": e.rcvd.code if e.rcvd else None, "close_reason": e.rcvd.reason if e.rcvd else None}


async def main(scenario: str, url: str, auth: str | None) -> dict:
    headers = {"Authorization": auth} if auth else {}
    try:
        async with connect(url, subprotocols=["chat.v1", "chat.v2"], additional_headers=headers,
                           max_size=None, open_timeout=20, close_timeout=5) as ws:
            out = {"status": 101, "subprotocol": ws.subprotocol}
            if scenario == "status":
                return out
            if scenario == "echo":
                await ws.send("hello")
                out["text"] = await ws.recv()
                await ws.send(bytes(range(256)))
                out["binary_ok"] = await ws.recv() == bytes(range(256))
                big = bytes(i % 251 for i in range(1_000_000))
                await ws.send(big)
                echoed = await ws.recv()
                out["big_ok"] = echoed == big
                out["big_len"] = len(echoed)
                await ws.send("close:4001")
            elif scenario == "idle":
                await ws.send("one")
                out["text"] = await ws.recv()
            elif scenario == "chatty":
                out["echoed"] = 0
                try:
                    for i in range(10):
                        await ws.send(f"m{i}")
                        if await ws.recv() == f"m{i}":
                            out["echoed"] += 1
                        await asyncio.sleep(0.3)
                except ConnectionClosed as e:
                    out.update(closed(e))
                    return out
            else:
                await ws.send("die")
            try:
                await asyncio.wait_for(ws.recv(), 20)
                out["unexpected"] = "a message after close"
            except ConnectionClosed as e:
                out.update(closed(e))
            return out
    except InvalidStatus as e:
        return {"status": e.response.status_code}


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(asyncio.run(main(args[0], args[1], args[2] if len(args) > 2 else None))))
