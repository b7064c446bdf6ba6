"""A stand-in for a legacy FastAPI service, for the interop tests.

Run: python legacy_app.py --port N   (serves on 127.0.0.1, OpenAPI at /api/v1/openapi.json)

Every route echoes what it received so the tests can compare a call made through
framex-rs with the same call made directly.
"""

import argparse
import asyncio
import hashlib
import os

import uvicorn
from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel

app = FastAPI(
    title="legacy",
    version="1.2.3",
    openapi_url="/api/v1/openapi.json",
    openapi_tags=[{"name": "keyed", "description": "Routes that want the X-API-Key header."}],
)

# A security scheme in the document (components.securitySchemes.APIKeyHeader).
api_key_header = APIKeyHeader(name="X-API-Key")

STATE = {"hits": 0, "disconnects": 0}


class Owner(BaseModel):
    id: int
    email: str | None = None


class Item(BaseModel):
    name: str
    price: float = 1.0
    tags: list[str] = []
    owner: Owner


class MatchModel(BaseModel):
    name: str


@app.get("/api/v1/base/version")
async def version() -> dict:
    return {"version": "1.2.3"}


@app.post("/api/v1/base/match")
async def match(model: MatchModel) -> dict:
    return {"matched": model.name}


@app.get("/api/v1/base/envelope")
async def envelope(value: int = 1) -> dict:
    return {"status": 200, "message": "success", "timestamp": "2026-01-01 00:00:00", "data": {"value": value}}


@app.get("/api/v1/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict:
    return {"item_id": item_id, "q": q}


@app.post("/api/v1/items")
async def create_item(model: Item) -> dict:
    return {"item": model.model_dump(), "total": model.price * (1 + len(model.tags))}


@app.get("/api/v1/search")
async def search(q: str, limit: int = 10, flag: bool = False) -> dict:
    return {"q": q, "limit": limit, "flag": flag}


@app.post("/api/v1/upload")
async def upload(file_a: UploadFile = File(...), file_b: UploadFile = File(...), label: str = Form(...)) -> dict:
    out = {"label": label}
    for name, f in (("file_a", file_a), ("file_b", file_b)):
        data = await f.read()
        out[name] = {"filename": f.filename, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return out


@app.post("/api/v1/form")
async def form(name: str = Form(...), age: int = Form(...)) -> dict:
    return {"name": name, "age": age}


@app.post("/api/v1/binary")
async def binary(request: Request) -> dict:
    data = await request.body()
    return {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "content_type": request.headers.get("content-type"),
    }


@app.get("/api/v1/teapot")
async def teapot() -> dict:
    raise HTTPException(status_code=418, detail="I'm a teapot")


@app.get("/api/v1/secret")
async def secret(request: Request):
    if request.headers.get("authorization") != os.environ.get("LEGACY_KEY", "legacy-key"):
        return JSONResponse({"detail": "bad key"}, status_code=401)
    return {"secret": "ok"}


@app.get("/api/v1/keyed", tags=["keyed"])
async def keyed(key: str = Depends(api_key_header)):
    return {"keyed": key == "legacy-api-key"}


@app.get("/api/v1/hidden")
async def hidden() -> dict:
    return {"hidden": True}


@app.get("/api/v1/stream/sse")
async def stream_sse(n: int = 5, delay_ms: int = 50):
    async def events():
        try:
            for i in range(n):
                yield f'event: message_chunk\ndata: {{"content": "{i}"}}\n\n'
                await asyncio.sleep(delay_ms / 1000)
            yield "event: finish\ndata: {}\n\n"
        except (asyncio.CancelledError, GeneratorExit):
            STATE["disconnects"] += 1
            raise

    return StreamingResponse(events(), media_type="text/event-stream")


@app.get("/api/v1/stream/bytes")
async def stream_bytes(size: int = 1 << 20, chunk: int = 65536):
    # Byte i of the body is i % 251, so a client can check every byte it got.
    pattern = bytes(i % 251 for i in range(chunk + 251))

    async def body():
        sent = 0
        try:
            while sent < size:
                n = min(chunk, size - sent)
                yield pattern[sent % 251 : sent % 251 + n]
                sent += n
                await asyncio.sleep(0)
        except (asyncio.CancelledError, GeneratorExit):
            STATE["disconnects"] += 1
            raise

    return StreamingResponse(body(), media_type="application/octet-stream")


@app.get("/api/v1/stream/die")
async def stream_die(after: int = 2, declared_length: int = 0):
    """Sends `after` events, then fails. With `declared_length` the response
    announces that many bytes (so the cut is visible to a client that counts)."""

    async def events():
        for i in range(after):
            yield f'event: message_chunk\ndata: {{"content": "{i}"}}\n\n'
            await asyncio.sleep(0.05)
        raise RuntimeError("the legacy service fell over mid-stream")

    headers = {"content-length": str(declared_length)} if declared_length else None
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@app.get("/api/v1/slow")
async def slow(ms: int = 1000) -> dict:
    await asyncio.sleep(ms / 1000)
    return {"slept": ms}


@app.post("/api/v1/counter/hit")
async def counter_hit() -> dict:
    STATE["hits"] += 1
    return {"hits": STATE["hits"]}


@app.get("/api/v1/counter")
async def counter() -> dict:
    return {"hits": STATE["hits"], "disconnects": STATE["disconnects"]}


@app.get("/api/v1/headers")
async def headers(request: Request) -> dict:
    return {"headers": {k.lower(): v for k, v in request.headers.items()}, "client": request.client.host}


@app.websocket("/ws/echo")
@app.websocket("/ws/private/echo")
async def ws_echo(websocket: WebSocket):
    """Echoes text and binary messages. Picks the subprotocol `chat.v2` when offered.
    `close:<code>` closes with that code; `die` ends the whole process at once (an
    upstream that dies mid-connection)."""
    offered = websocket.scope.get("subprotocols", [])
    await websocket.accept(subprotocol="chat.v2" if "chat.v2" in offered else None)
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None:
            if text.startswith("close:"):
                await websocket.close(code=int(text[len("close:"):]))
                return
            if text == "die":
                os._exit(3)
            await websocket.send_text(text)
        elif message.get("bytes") is not None:
            await websocket.send_bytes(message["bytes"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--ssl-keyfile", help="and this private key (PEM)")
    args = parser.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
