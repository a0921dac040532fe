"""The side-by-side benchmark runner behind `deltaprop bench` (peers are optional).

`import deltaprop` never imports this package; the CLI calls `main` on demand.
"""
from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark suite with command-line arguments `argv`; return the exit code."""
    from .runner import main as _main

    return _main(argv)


__all__ = ["main"]
