"""WebSocket echo for bench/run (Python's `websockets`, from the test venv).

  python ws_echo.py serve PORT        an echo server on 127.0.0.1:PORT (any path)
  python ws_echo.py client URL SECS   one connection, sequential 32-byte round trips
                                      for SECS seconds; prints round trips per second
"""

import asyncio
import sys
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def server(port: int):
    async with serve(echo, "127.0.0.1", port, compression=None):
        await asyncio.Future()


async def client(url: str, secs: float):
    async with connect(url, compression=None) as ws:
        payload = b"x" * 32
        n, end = 0, time.monotonic() + secs
        while time.monotonic() < end:
            await ws.send(payload)
            await ws.recv()
            n += 1
    print(f"{n / secs:.0f}")


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        asyncio.run(server(int(sys.argv[2])))
    else:
        asyncio.run(client(sys.argv[2], float(sys.argv[3])))
