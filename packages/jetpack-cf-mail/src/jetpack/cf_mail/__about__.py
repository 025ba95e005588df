"""Version of the jetpack-cf-mail distribution."""

__version__ = "0.1.0"
