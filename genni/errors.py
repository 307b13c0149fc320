"""Exceptions that the command line turns into exit status 2 (bad input)."""


class GenniError(Exception):
    """Bad input: the CLI prints the message on one line and exits with status 2."""


class ConfigError(GenniError):
    """A malformed or inconsistent experiment configuration."""
