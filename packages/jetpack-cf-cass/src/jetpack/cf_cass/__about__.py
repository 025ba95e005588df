"""Version of the jetpack-cf-cass distribution."""

__version__ = "0.1.0"
