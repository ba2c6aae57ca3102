"""The least any HTTP scheduler extender in Python costs kube-scheduler: a pass-through.

    .venv/bin/python bench/passthrough_extender.py PORT

``bench/kube_scheduler.py --modes ...,passthrough`` registers it exactly as it registers
Spillover (filter, prioritize, preempt, weight 5, nodeCacheCapable, ignorable) and measures the
scheduler's throughput with it.  It is what issue 13 calls "a minimal pass-through extender
written in plain Python (msgspec, Starlette, uvicorn)": filter decodes the request with msgspec
and answers every offered node as feasible, prioritize answers no scores, preempt keeps the
scheduler's victims; it reads nothing from the API server.  Against it, a Spillover row says
what Spillover costs beyond merely being an HTTP extender on the same machine.
"""

from __future__ import annotations

import sys

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class _Args(msgspec.Struct):
    NodeNames: list[str] | None = None


class _Preempt(msgspec.Struct):
    NodeNameToMetaVictims: dict[str, object] | None = None


_decode_args = msgspec.json.Decoder(_Args).decode
_decode_preempt = msgspec.json.Decoder(_Preempt).decode
_encode = msgspec.json.Encoder().encode


async def _filter(request: Request) -> Response:
    args = _decode_args(await request.body())
    return Response(
        _encode({"NodeNames": args.NodeNames or [], "FailedNodes": {}, "Error": ""}),
        media_type="application/json",
    )


async def _prioritize(request: Request) -> Response:
    await request.body()
    return Response(b"[]", media_type="application/json")


async def _preempt(request: Request) -> Response:
    args = _decode_preempt(await request.body())
    return Response(
        _encode({"NodeNameToMetaVictims": args.NodeNameToMetaVictims or {}}),
        media_type="application/json",
    )


async def _ready(request: Request) -> Response:
    return JSONResponse({"ok": True})


app = Starlette(
    routes=[
        Route("/filter", _filter, methods=["POST"]),
        Route("/prioritize", _prioritize, methods=["POST"]),
        Route("/preempt", _preempt, methods=["POST"]),
        Route("/readyz", _ready, methods=["GET"]),
    ]
)

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )
