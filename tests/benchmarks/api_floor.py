"""The floor of the API benchmark: ``python -m tests.benchmarks.api_floor --port N``.

The same server stack as ``volatility serve`` (uvicorn with its HTTP parser and event loop, JSON
logs, the serving process's garbage-collector tuning) in front of a trivial application: it
reads the request body and answers a fixed small JSON document. What the API costs above this is
the API; what this costs is the machine, the kernel's loopback and the server library.
"""

from __future__ import annotations

import argparse
from typing import Any

ANSWER = b'{"score":0.5}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        from volatility.runtime import tune_gc

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                tune_gc()  # as the API does once started
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from volatility.runtime import configure_logging
    from volatility.settings import RuntimeSettings

    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.api_floor", description=__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    configure_logging(RuntimeSettings(), "api-floor")
    # The arguments of `volatility serve` (volatility.api.command.run_serve).
    uvicorn.run(
        app, host=args.host, port=args.port, log_config=None, access_log=False, server_header=False
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
