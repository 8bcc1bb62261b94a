"""Errors every layer may raise about the configuration a user gave."""


class ConfigError(ValueError):
    """The config is invalid; the message lists every problem found."""
