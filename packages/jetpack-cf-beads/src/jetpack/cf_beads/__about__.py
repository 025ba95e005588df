"""Version of the jetpack-cf-beads distribution."""

__version__ = "0.1.0"
