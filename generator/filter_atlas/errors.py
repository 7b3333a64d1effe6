"""The one exception type the command line turns into a one-line message and exit code 2."""


class AtlasError(Exception):
    """Bad input or environment, explained in one line for the user (no traceback)."""


class WeightsUnavailable(AtlasError):
    """The model's weights could not be fetched (offline, say): work that needs no model goes on."""
