"""Run a fake as its own process (benchmarks, manual tests, a server under test in a
subprocess). Script it over HTTP: ``POST /_fake/script`` with a JSON list of replies."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from .script import FakeServer, Reply


def serve(cls: type[FakeServer]) -> None:
    parser = argparse.ArgumentParser(description=cls.__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=None, help="refuse requests without this key")
    parser.add_argument("--default-text", default="ok", help="reply when the script is empty")
    parser.add_argument("--default-json", default=None, help="the default reply as JSON fields")
    args = parser.parse_args()

    async def main() -> None:
        default = Reply(text=args.default_text)
        if args.default_json:
            default = Reply.from_json(json.loads(args.default_json))
        fake = cls(api_key=args.api_key, default=default)
        url = await fake.start(args.port)
        print(json.dumps({"url": url}), flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
