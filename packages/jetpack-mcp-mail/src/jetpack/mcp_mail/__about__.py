"""Version of the jetpack-mcp-mail distribution."""

__version__ = "0.1.0"
