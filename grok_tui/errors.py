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


# --- exceptions of the machine: one classification for every command and the loop ----------------

OUT_OF_MEMORY = "out of memory (try a smaller model, batch size or number of points)."

# What torch's allocators say when they give up: the CPU allocator ("DefaultCPUAllocator: can't allocate
# memory: you tried to allocate ... bytes"), CUDA, MPS and cuBLAS/cuDNN workspaces ("CUDA out of memory",
# "CUBLAS_STATUS_ALLOC_FAILED", "MPS backend out of memory").
_OOM_MESSAGES = ("out of memory", "can't allocate memory", "failed to allocate", "CUBLAS_STATUS_ALLOC_FAILED")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether exc is an allocation failure: MemoryError, torch's OutOfMemoryError (matched by name, so
    no torch import) or a RuntimeError with an allocator's message."""
    if isinstance(exc, MemoryError) or any(t.__name__ == "OutOfMemoryError" for t in type(exc).__mro__):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _OOM_MESSAGES)


def os_error_sentence(exc: OSError) -> str:
    """An OSError as one sentence: its reason and the file it concerns."""
    why = exc.strerror or str(exc) or type(exc).__name__
    return f"{why} ({exc.filename})" if exc.filename else why


def describe(exc: BaseException) -> tuple[str, int] | None:
    """The one sentence and exit code for an exception meant for the user (a GrokError, an OSError, out
    of memory), or None for anything else (a bug: its traceback is what helps)."""
    if isinstance(exc, GrokError):
        return str(exc), exc.exit_code
    if is_out_of_memory(exc):
        return OUT_OF_MEMORY, 1
    if isinstance(exc, OSError):
        return os_error_sentence(exc), 1
    return None


def sentence(exc: BaseException) -> str:
    """What `describe` says about exc, or its type and message for a bug (for a run directory or a
    result file, which must say what happened either way)."""
    known = describe(exc)
    return known[0] if known is not None else f"{type(exc).__name__}: {exc}"
