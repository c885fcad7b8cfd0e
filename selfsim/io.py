"""Atomic file writes and strict JSONL reading with file:line error reports.

A temporary file or folder of an atomic write is named `.<target>.<pid>-<host>.<random>.tmp`, so
`clean_orphans` can tell the leftovers of a killed writer (same host, process gone) from a write in
progress, and removes only those (and temporaries of older selfsim versions, `.<target>.<random>.tmp`,
older than this process).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from selfsim.errors import SelfsimError
from selfsim.guard import MARKER

_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
_STARTED = time.time()
_TMP = re.compile(r"^\..+\.(?P<pid>\d+)-(?P<host>[0-9a-f]{6})\.[a-z0-9_]{8}\.tmp$")
_LEGACY_TMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
FAULT_ENV = "SELFSIM_FAULT"
MAX_LINE_BYTES = 2**20  # one JSONL row; a prompt this long (~250k tokens) fits no model's context


_FAULT_HITS: dict[str, int] = {}


def fault_point(name: str, path: str | Path | None = None) -> None:
    """Fail here when SELFSIM_FAULT names this point (tests of kill, full-disk and Ctrl-C windows).

    `SELFSIM_FAULT=name[@N][:action]` acts the N-th time the point is reached (default: the first).
    Actions: `kill` (default) exits at once with status 137, as a SIGKILL would; `enospc` raises
    OSError(ENOSPC) for `path`, as a full disk would; `interrupt` sends this process a SIGINT (Ctrl-C).
    The point `write` is reached before every write of this module (atomic files and folders, appends).
    """
    wanted = os.environ.get(FAULT_ENV)
    if not wanted:
        return
    spec, _, action = wanted.partition(":")
    point, _, nth = spec.partition("@")
    if point != name:
        return
    _FAULT_HITS[name] = _FAULT_HITS.get(name, 0) + 1
    if _FAULT_HITS[name] != int(nth or 1):
        return
    if action in ("", "kill"):
        os._exit(137)
    if action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), None if path is None else str(path))
    if action == "interrupt":
        signal.raise_signal(signal.SIGINT)
        return
    raise SelfsimError(f"{FAULT_ENV}={wanted}: unknown action {action!r}; use kill, enospc or interrupt")


def temp_prefix(path: Path) -> str:
    """The name prefix of this process's temporaries for `path` (see the module docstring)."""
    return f".{path.name}.{os.getpid()}-{_HOST}."


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def is_orphan(path: Path) -> bool:
    """Whether `path` is a temporary of an atomic write whose writer is gone (never one still writing)."""
    match = _TMP.match(path.name)
    if match:
        return match["host"] == _HOST and not _alive(int(match["pid"]))
    if _LEGACY_TMP.match(path.name):
        try:
            return path.lstat().st_mtime < _STARTED
        except FileNotFoundError:
            return False
    return False


def clean_orphans(directory: str | Path) -> list[Path]:
    """Delete the temporaries that killed atomic writes left in `directory`; return what was removed."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") and path.name.endswith(".tmp") and is_orphan(path):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def stabilize_safetensors(path: str | Path) -> None:
    """Rewrite a safetensors header in place with its `__metadata__` keys sorted (the writer's order varies by run)."""
    with open(path, "r+b") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size))
        meta = header.get("__metadata__")
        if not isinstance(meta, dict):
            return
        header["__metadata__"] = dict(sorted(meta.items()))
        out = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        if len(out) > size:
            raise SelfsimError(f"{path}: cannot reorder the safetensors header in place")
        fh.seek(8)
        fh.write(out + b" " * (size - len(out)))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on clean exit fsync it and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as fh:
            yield fh
            fault_point("write", path)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a library's write error (a full disk) names the file it was writing
        raise


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; on clean exit replace `path` with it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp"))
    try:
        yield tmp
        fault_point("write", path)
        marker = path / MARKER
        if marker.is_file() and not (tmp / MARKER).exists():  # the output claim's marker stays with the directory
            shutil.copy2(marker, tmp / MARKER)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented, key-sorted JSON, atomically."""
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, ensure_ascii=False)
        fh.write("\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file, naming the file in any error."""
    path = Path(path)
    if not path.is_file():
        raise SelfsimError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SelfsimError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSON lines, atomically; return the number written."""
    n = 0
    with atomic_open(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True))
            fh.write("\n")
            n += 1
    return n


def append_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Append rows in one write + fsync; a failed write (a full disk) is cut back to the last whole row.

    A kill can still leave a torn last line, which a reader skips (see `read_jsonl`).
    """
    data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    if not data:
        return 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8")
    with open(path, "ab", buffering=0) as fh:
        start = os.lseek(fh.fileno(), 0, os.SEEK_END)
        try:
            fault_point("write", path)
            view = memoryview(raw)
            while view:
                view = view[os.write(fh.fileno(), view):]
            os.fsync(fh.fileno())
        except BaseException:
            os.ftruncate(fh.fileno(), start)
            raise
    return data.count("\n")


def iter_jsonl(
    path: str | Path, *, skip_bad: bool = False, tolerate_torn_tail: bool = False, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) from a JSONL file; a malformed line raises with file:line.

    `tolerate_torn_tail` ignores an unterminated last line (an append cut short by a kill). A line
    longer than `max_line_bytes` is refused (skipped with `skip_bad`) without being read into memory.
    """
    path = Path(path)
    if not path.is_file():
        raise SelfsimError(f"{path}: no such file")
    with open(path, "rb") as fh:
        lineno = 0
        while raw := fh.readline(max_line_bytes + 1):
            lineno += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                size = len(raw) + _skip_line(fh)
                if skip_bad:
                    continue
                raise SelfsimError(
                    f"{path}:{lineno}: line of {size / 2**20:.1f} MiB, over the {max_line_bytes / 2**20:g} MiB a row may hold "
                    "(no prompt that long fits a model's context); shorten or remove it"
                )
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                if skip_bad:
                    continue
                raise SelfsimError(f"{path}:{lineno}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
            except ValueError as exc:
                if tolerate_torn_tail and not line.endswith("\n"):
                    return
                if skip_bad:
                    continue
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                raise SelfsimError(f"{path}:{lineno}: malformed JSONL line ({reason})") from None
            yield lineno, obj


def _skip_line(fh: IO[bytes]) -> int:
    """Read past the rest of the current line in 1 MiB pieces; the bytes skipped."""
    skipped = 0
    while chunk := fh.readline(2**20):
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return skipped


def read_jsonl(path: str | Path, **kwargs: Any) -> list[dict[str, Any]]:
    """All objects of a JSONL file (see `iter_jsonl` for the options)."""
    return [obj for _, obj in iter_jsonl(path, **kwargs)]
