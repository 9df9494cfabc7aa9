"""Errors the front ends turn into one sentence and an exit code (never a traceback)."""


class GrokError(Exception):
    """Base of every error meant for the user: str(e) is the sentence to show."""

    exit_code = 1


class ConfigError(GrokError):
    """Bad input: a flag, a config file, a preset, a run or checkpoint reference (exit 2)."""

    exit_code = 2


class CheckpointError(GrokError):
    """A checkpoint that is missing, corrupt or does not fit the model (exit 2)."""

    exit_code = 2


class TrainingError(GrokError):
    """Training cannot go on: a non-finite loss, a full disk, out of memory (exit 1)."""

    exit_code = 1
