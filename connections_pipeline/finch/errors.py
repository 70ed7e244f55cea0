"""The client's one exception: a setting or argument it cannot use."""


class FinchConfigError(ValueError):
    """A client setting is unusable; raised before any request is sent."""
