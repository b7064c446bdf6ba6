"""A FastAPI service with typed path parameters, for the typed-path tests.

Run: python typed_app.py --port N   (serves on 127.0.0.1, OpenAPI at /api/v1/openapi.json)

FastAPI (pydantic v2, lax mode) reads `/api/v1/users/00`, `/+0`, `/0%20`, `/1.0` as
the same integer as `/api/v1/users/0`. Every typed route answers what it read and
records the raw path it was called with; `GET /seen` lists them.
"""

import argparse
import datetime
import enum
import uuid

import uvicorn
from fastapi import FastAPI, Request

app = FastAPI(title="typed", version="1.0.0", openapi_url="/api/v1/openapi.json")

SEEN = []


class Color(str, enum.Enum):
    red = "red"
    blue = "blue"


class Level(enum.IntEnum):
    low = 1
    high = 2


def answer(request: Request, value):
    SEEN.append(request.scope["raw_path"].decode("latin-1"))
    return {"value": value}


@app.get("/api/v1/users/{uid}")
def user(uid: int, request: Request):
    return answer(request, uid)


@app.get("/api/v1/flags/{on}")
def flag(on: bool, request: Request):
    return answer(request, on)


@app.get("/api/v1/ids/{id}")
def by_id(id: uuid.UUID, request: Request):
    return answer(request, str(id))


@app.get("/api/v1/days/{d}")
def day(d: datetime.date, request: Request):
    return answer(request, d.isoformat())


@app.get("/api/v1/colors/{c}")
def color(c: Color, request: Request):
    return answer(request, c.value)


@app.get("/api/v1/levels/{n}")
def level(n: Level, request: Request):
    return answer(request, int(n))


@app.get("/seen", include_in_schema=False)
def seen():
    return SEEN


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
