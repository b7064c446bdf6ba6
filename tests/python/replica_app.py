"""One replica of a small FastAPI service, for the fault tests and `bench/faults`.

Run: python replica_app.py --port N --name a [--ids FILE] [--host 127.0.0.2]   (default host 127.0.0.1)

GET /api/v1/who answers with the replica's name; POST /api/v1/hit appends the `id` of
its JSON body to FILE (one line each, so a test can tell whether a POST was ever
processed twice, across restarts of the replica) and answers with the name.
"""

import argparse
import asyncio
import os

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI(title="replica", version="1", openapi_url="/api/v1/openapi.json")
STATE = {"name": "?", "ids": None}


class Hit(BaseModel):
    id: str


@app.get("/api/v1/who")
async def who():
    # A little time in the handler, so that requests are under way when a replica dies.
    await asyncio.sleep(0.002)
    return {"name": STATE["name"]}


@app.post("/api/v1/hit")
async def hit(body: Hit):
    await asyncio.sleep(0.002)
    if STATE["ids"] is not None:
        os.write(STATE["ids"], f"{body.id}\n".encode())
    return {"name": STATE["name"], "id": body.id}


@app.get("/health")
async def health():
    return {"ok": True}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="replica")
    parser.add_argument("--ids")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    STATE["name"] = args.name
    if args.ids:
        STATE["ids"] = os.open(args.ids, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
