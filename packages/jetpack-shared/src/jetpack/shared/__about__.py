"""Version of the jetpack-shared distribution."""

__version__ = "0.1.0"
