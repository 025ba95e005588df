"""Version of the jetpack-beads distribution."""

__version__ = "0.1.0"
