"""Run the demo shop on its own: ``python -m cobrowse.demo [--host H] [--port P]``."""

import argparse

from aiohttp import web

from . import create_shop_app


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the Fernwood demo shop (no proxy).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    web.run_app(create_shop_app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
