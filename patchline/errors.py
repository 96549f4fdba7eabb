"""User-facing errors: each carries one sentence an operator can act on."""


class PatchlineError(Exception):
    """An error the CLI reports as one sentence and a non-zero exit, without a traceback."""


class BankError(PatchlineError):
    """A memory bank is missing, half-written, corrupt, or does not match the line's settings."""


class ConfigError(PatchlineError):
    """A settings file, pipeline file or command-line value is invalid; the message names the field."""


class ConfigErrors(ConfigError):
    """Every problem found in one file, each a sentence naming where it is; str() lists them, one a line."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        text = self.problems[0] if len(self.problems) == 1 else (
            f"{len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems))
        super().__init__(text)


def problems_of(error: ConfigError) -> list[str]:
    """The one or several problem sentences a ConfigError carries."""
    return list(error.problems) if isinstance(error, ConfigErrors) else [str(error)]
