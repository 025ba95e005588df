"""The jetpack command: runs a swarm of coding agents over shared task, mail and memory stores."""

from jetpack.cli.__about__ import __version__

__all__ = ["__version__"]
