"""`deltaprop playground`: train in the browser, live, on deltaprop's engine.

A local web server (aiohttp, the optional extra `playground`) serves one page; each page gets
its own training session over a WebSocket. Every number the page shows (outputs, deltas, the
decision boundary, gradients, the layer rule of a clicked neuron) is computed by the engine in
this process: session.py is the engine side, server.py the HTTP/WebSocket side, static/ the page.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Sequence

__all__ = ["main", "serve"]


async def serve(port: int = 0, open_browser: bool = True, announce=print, token: str | None = None) -> None:
    """Run the server until cancelled: listen on 127.0.0.1:port (0: a free one), announce the URL,
    open the browser unless told not to."""
    from .server import Server, start

    server = Server(token)
    runner = await start(server, port)
    try:
        announce(server.url)
        if open_browser:
            import webbrowser

            await asyncio.get_running_loop().run_in_executor(None, webbrowser.open, server.url)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected a whole number from 0 to 65535 "
                                         "(0: a free port)")
    return v


def main(argv: Sequence[str] | None = None) -> int:
    """The `deltaprop playground` command; returns the exit code (Ctrl-C stops it: 0)."""
    parser = argparse.ArgumentParser(
        prog="deltaprop playground",
        description="Train a small network in your browser, live, on deltaprop's engine: every knob of "
                    "TensorFlow Playground, and for any neuron the layer rule with this step's numbers. The "
                    "server listens on 127.0.0.1 only and the URL carries a random token.")
    parser.add_argument("--port", type=_port, default=0, help="the port to listen on (default: a free one)")
    parser.add_argument("--no-browser", action="store_true", help="print the URL but do not open a browser")
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    try:
        import aiohttp  # noqa: F401
    except ModuleNotFoundError:
        print("deltaprop playground: error: the playground needs aiohttp; install it with "
              "pip install 'deltaprop[playground]'", file=sys.stderr)
        return 1

    def announce(url: str) -> None:
        print(f"deltaprop playground: {url}\n(Ctrl-C to stop)", flush=True)

    try:
        asyncio.run(serve(args.port, not args.no_browser, announce))
    except KeyboardInterrupt:
        print("deltaprop playground: stopped", file=sys.stderr, flush=True)
        return 0
    except OSError as exc:
        print(f"deltaprop playground: error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    return 0
