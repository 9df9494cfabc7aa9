"""Files of a run directory that need no torch: atomic writes, JSON and JSON-lines reading, the names of
checkpoint files and their JSON sidecars.

``checkpoints/step-00001234.safetensors`` + ``step-00001234.json`` (the sidecar); the resumable state of
the newest checkpoint is ``step-00001234.state.safetensors`` + ``step-00001234.state.json``. The tensor
files themselves are read and written by ``train/checkpoint.py``.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def _create_temp(path: Path) -> tuple[int, str]:
    """A new empty temp file .<name>.<random>.tmp beside path, open for writing. Created with mode 0666
    less the umask, as open() creates any file (tempfile.mkstemp makes 0600: on a shared machine a
    colleague could then read a run's metrics but not its config, summary or checkpoints)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temp file name beside {path}")


def atomic_write(path: Path, write: Callable[[str], Any], make_dirs: bool = True) -> None:
    """Call write(tmp_path), then rename onto path; on any failure the old file (if any) stays. The file
    gets the mode every file the user creates gets (0666 less the umask). With make_dirs=False a missing
    directory is an OSError (ENOENT), never made again (a run directory removed under its writer)."""
    path = Path(path)
    if make_dirs:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            if stat.S_IMODE(os.fstat(f.fileno()).st_mode) != mode:  # a writer that made its own file
                os.fchmod(f.fileno(), mode)  # (safetensors' save_file makes 0600) gets ours back
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: Path, text: str, make_dirs: bool = True) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text), make_dirs)


def overwrite_in_place(path: Path, text: str) -> bool:
    """Write text over an existing file's bytes (no new file: works on a full disk while it fits the
    blocks the file has); False when that cannot be done."""
    data = text.encode()
    try:
        with open(path, "r+b") as f:
            f.write(data)
            f.truncate(len(data))
            f.flush()
            os.fsync(f.fileno())
        return True
    except OSError:
        return False


def is_temp_file(name: str) -> bool:
    """A temp file of an interrupted atomic write (.<name>.<random>.tmp) or of safetensors (*.tmp*)."""
    return (name.startswith(".") and name.endswith(".tmp")) or ".safetensors.tmp" in name


def remove_temp_files(run_dir: Path) -> list[str]:
    """Remove the temp files interrupted writes left in a run directory and its checkpoints/ (call it
    only from the one process about to write there); returns their names."""
    gone = []
    for d in (Path(run_dir), Path(run_dir) / "checkpoints"):
        try:
            entries = list(d.iterdir())
        except OSError:
            continue
        for p in entries:
            if is_temp_file(p.name) and p.is_file() and not p.is_symlink():
                try:
                    p.unlink()
                    gone.append(p.name)
                except OSError:
                    pass
    return gone


# --- reading -----------------------------------------------------------------------------------

def open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file, not a link to one: a FIFO, a device (a link to
    /dev/zero), a directory or a symlink under a run's file name is an OSError, so that no reader hangs
    on a pipe, reads until out of memory, or follows a link out of the run directory."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: Path) -> bytes:
    """The bytes of a regular file (see open_regular); OSError otherwise."""
    with open_regular(path) as f:
        return f.read()


def read_json(path: Path) -> dict:
    """The JSON object in path; {} when it is missing, unreadable, not a regular file or not an object."""
    try:
        obj = json.loads(read_bytes(path))
        return obj if isinstance(obj, dict) else {}
    except (OSError, ValueError):
        return {}


def parse_jsonl(data: bytes) -> tuple[list[dict], int]:
    """Complete lines of `data` as objects, and how many bytes they used (a torn tail is left)."""
    end = data.rfind(b"\n") + 1
    rows = []
    for line in data[:end].splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # a line torn by a crash in the middle of the file: skip it
        if isinstance(obj, dict):
            rows.append(obj)
    return rows, end


def read_jsonl(path: Path) -> list[dict]:
    try:
        data = read_bytes(path)
    except OSError:
        return []
    return parse_jsonl(data)[0]


def jsonl_count_and_last(path: Path, chunk: int = 1 << 20) -> tuple[int, dict | None]:
    """(complete lines, the last of them that is a JSON object) of a .jsonl file, in constant memory: a
    run of a million rows is counted in a second instead of parsed whole."""
    try:
        with open_regular(path) as f:
            lines = 0
            while block := f.read(chunk):
                lines += block.count(b"\n")
            size = f.tell()
            back = min(size, 1 << 16)
            f.seek(size - back)
            tail = f.read()
    except OSError:
        return 0, None
    rows, _ = parse_jsonl(tail[tail.find(b"\n") + 1:] if back < size else tail)
    return lines, (rows[-1] if rows else None)


class JsonlTail:
    """Reads the rows appended to a .jsonl file since the last call (keeps a torn line for later).

    A file replaced (a resume rewrites it without the rows past its checkpoint) or cut shorter is read
    again from its start; `restarted` says so after that read."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0
        self.inode: int | None = None
        self.restarted = False

    def read(self) -> list[dict]:
        self.restarted = False
        try:
            with open_regular(self.path) as f:
                st = os.fstat(f.fileno())
                if (self.inode is not None and st.st_ino != self.inode) or st.st_size < self.offset:
                    self.offset, self.restarted = 0, True
                self.inode = st.st_ino
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        rows, used = parse_jsonl(data)
        self.offset += used
        return rows


def rewrite_jsonl(path: Path, keep: Callable[[dict], bool]) -> int:
    """Keep the complete lines of a .jsonl file whose object `keep`s (byte for byte), dropping a torn
    last line, lines that do not parse and the rest; returns how many lines were dropped. The file is
    replaced atomically, and only when something changes."""
    path = Path(path)
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        return 0
    end = data.rfind(b"\n") + 1
    kept, dropped = [], 0
    for line in data[:end].splitlines(keepends=True):
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and keep(obj):
            kept.append(line)
        else:
            dropped += 1
    if not dropped and end == len(data):
        return 0
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(b"".join(kept)))
    return dropped + (end != len(data))


# --- checkpoint files --------------------------------------------------------------------------

CKPT_PREFIX = "step-"


def ckpt_name(step: int) -> str:
    """The stem of the checkpoint files of a step: step-00001234."""
    return f"{CKPT_PREFIX}{step:08d}"


def ckpt_step(path: Path) -> int | None:
    """The step in a checkpoint file's name (step-00001234.safetensors, .json, .state.json), or None."""
    stem = Path(path).name.split(".", 1)[0]
    digits = stem[len(CKPT_PREFIX):]
    ok = stem.startswith(CKPT_PREFIX) and digits.isascii() and digits.isdigit()
    return int(digits) if ok else None


def checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(step, weights file) of every checkpoint in directory, by step."""
    out = []
    for p in sorted(Path(directory).glob(f"{CKPT_PREFIX}*.safetensors")):
        step = ckpt_step(p)
        if step is not None and not p.name.endswith(".state.safetensors"):
            out.append((step, p))
    return out


def latest_state(directory: Path) -> tuple[int, Path] | None:
    """(step, .state.json file) of the newest resumable state in directory, or None."""
    found = [(s, p) for p in Path(directory).glob(f"{CKPT_PREFIX}*.state.json") if (s := ckpt_step(p)) is not None]
    return max(found) if found else None


def read_sidecar(path: Path) -> dict[str, Any]:
    """The JSON sidecar of a checkpoint (step, tags, metrics, arch); {} when it is missing or torn."""
    return read_json(Path(path).with_suffix(".json"))


class ProgressFile:
    """A job's progress as JSON lines, for whoever follows it through the file (the app and its child).

    `progress(stage, done, total)` appends {"stage", "done", "total", "elapsed_s", "eta_s"} at most
    `per_s` times a second (and always at a stage's end); the ETA is the stage's mean pace so far.
    `end(status, **fields)` appends the last line: {"status": finished | failed | cancelled, ...}.
    """

    def __init__(self, path: Path, per_s: float = 4.0):
        self.path = Path(path)
        self.every = 1.0 / per_s
        self._stage: tuple[str, float] | None = None  # the stage and when it began
        self._last = 0.0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def _append(self, obj: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(obj) + "\n")

    def progress(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if self._stage is None or self._stage[0] != stage:
            self._stage, self._last = (stage, now), 0.0
        if now - self._last < self.every and done < total:
            return
        self._last = now
        elapsed = now - self._stage[1]
        eta = elapsed / done * (total - done) if done > 0 else None
        self._append({"stage": stage, "done": done, "total": total, "elapsed_s": round(elapsed, 2),
                      "eta_s": None if eta is None else round(eta, 1)})

    def end(self, status: str, **fields: object) -> None:
        self._append({"status": status, **fields})
