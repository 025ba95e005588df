"""Version of the jetpack-cli distribution."""

__version__ = "0.1.0"
