"""User-facing errors: each carries one sentence an operator can act on."""


class PatchlineError(Exception):
    """An error the CLI reports as one sentence and a non-zero exit, without a traceback."""


class BankError(PatchlineError):
    """A memory bank is missing, half-written, corrupt, or does not match the line's settings."""


class ConfigError(PatchlineError):
    """A settings file, pipeline file or command-line value is invalid; the message names the field."""
