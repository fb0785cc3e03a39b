"""Errors that name what was wrong with a user's input, so callers can map them to 4xx / CLI messages."""


class AudioError(ValueError):
    """Audio that cannot be used: unreadable, empty, too short or too long."""


class ManifestError(ValueError):
    """A manifest line that cannot be used; the message names the file and line."""


class BundleError(ValueError):
    """A bundle or checkpoint directory that is missing files or has an unknown format."""
