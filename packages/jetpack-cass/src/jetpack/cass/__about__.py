"""Version of the jetpack-cass distribution."""

__version__ = "0.1.0"
