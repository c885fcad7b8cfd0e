"""The write guard: every command claims its output paths here before any work, so none can destroy
a model, an adapter or a run it does not own.

A directory a command writes is marked with `MARKER` when claimed (the marker makes a rerun into it a
resume); a directory is refused when it is, or lies inside, a model or adapter directory that selfsim
did not make there, lies inside selfsim's model stores (the embedded checkpoints, the fetched-model and
toy caches, the Hugging Face hub cache), is one of the command's inputs, or already holds files without
the marker. A file is refused inside those same places (and inside any model or adapter directory),
when it is an input, when it has a model file's
name, or when it exists and is not the kind of file the command writes. Directories and markers a
claim created are removed again by `release` when the command fails before writing anything else.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from selfsim.errors import SelfsimError
from selfsim.stores import checkpoints_dir, hub_cache_dir, models_dir, toy_cache_dir

MARKER = ".selfsim-out.json"
_MODEL_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json")
_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".ckpt")

_created: list[Path] = []  # directories and markers this process's claims created, newest last
command: str | None = None  # the running CLI command (set by selfsim.cli); a marked directory belongs to one command


def stores() -> dict[Path, str]:
    """selfsim's model stores (resolved) -> what each holds; nothing is ever written inside one by a claim."""
    named = {checkpoints_dir(): "the embedded toy checkpoints", models_dir(): "the fetched-model cache",
             toy_cache_dir(): "the toy-model cache", hub_cache_dir(): "the Hugging Face hub cache"}
    return {_resolve(p, "store"): what for p, what in named.items()}


def dir_kind(path: Path) -> str | None:
    """"model" or "adapter" when `path` holds a checkpoint's files (by name), else None."""
    try:
        names = {p.name for p in path.iterdir()} if path.is_dir() else set()
    except OSError:
        return None
    if names & set(_ADAPTER_FILES):
        return "adapter"
    if names & set(_MODEL_FILES) and (
        "config.json" in names or any(n.endswith(_WEIGHT_SUFFIXES) for n in names)
    ):
        return "model"
    return None


def is_marked(path: Path) -> bool:
    """Whether `path` is a directory a selfsim command claimed (it holds the marker)."""
    return (path / MARKER).is_file()


def _resolve(path: str | Path, flag: str) -> Path:
    try:
        return Path(path).expanduser().resolve(strict=False)
    except RuntimeError:  # Python < 3.13: a symlink loop
        raise SelfsimError(f"{flag} {path} cannot be used: a symbolic-link loop in the path") from None
    except OSError as exc:
        raise SelfsimError(f"{flag} {path} cannot be used: {describe_os_error(exc)}") from None
    except ValueError as exc:  # an embedded NUL byte
        raise SelfsimError(f"{flag} {path!r} is not a usable path ({exc})") from None


def _existing_ancestors(path: Path) -> list[Path]:
    """`path` (if it exists) and its existing parents, innermost first."""
    return [p for p in (path, *path.parents) if p.exists()]


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _check_common(path: Path, shown: str | Path, flag: str, reads: Iterable[str | Path], *, file: bool = False) -> None:
    for root, what in stores().items():
        if _inside(path, root):
            raise SelfsimError(f"{flag} {shown} is inside {what} ({root}); selfsim writes no output there: give a path outside it")
    for read in reads:
        if read is None or str(read) == "":
            continue
        source = _resolve(read, "input")
        if path == source or (source.is_dir() and _inside(path, source)):
            raise SelfsimError(f"{flag} {shown} is also an input of this command ({read}); give a new output path")
    for parent in _existing_ancestors(path.parent):
        kind = dir_kind(parent)
        if kind and (file or not is_marked(parent)):
            made = "" if file else " it did not make"
            raise SelfsimError(
                f"{flag} {shown} is inside the {kind} directory {parent}; selfsim never writes into a model or adapter"
                f"{made}: give a path outside it"
            )


def _check_parent_writable(path: Path, shown: str | Path, flag: str) -> None:
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise SelfsimError(f"{flag} {shown} cannot be created: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SelfsimError(f"{flag} {shown} cannot be written: no write permission in {parent}")


def _one_line(claim: Callable[..., Path]) -> Callable[..., Path]:
    """A file-system error while checking a claim (a name too long, an unreadable parent) is one line naming the path."""

    @functools.wraps(claim)
    def wrapped(path: str | Path, **kwargs: Any) -> Path:
        try:
            return claim(path, **kwargs)
        except OSError as exc:
            raise SelfsimError(f"{kwargs.get('flag', '--out')} {path} cannot be used: {describe_os_error(exc)}") from None

    return wrapped


@_one_line
def claim_dir(path: str | Path, *, flag: str = "--out", reads: Iterable[str | Path] = ()) -> Path:
    """Check that an output directory may be written, then create it with the marker; return it (as given).

    Refused (one line): see the module docstring. A directory holding the marker of this same command is
    accepted (a rerun resumes into it); one marked by another command is refused.
    """
    shown = Path(path).expanduser()
    real = _resolve(path, flag)
    if real.exists() and not real.is_dir():
        raise SelfsimError(f"{flag} {shown} is an existing file; give a directory (new or existing)")
    _check_common(real, shown, flag, reads)
    owner = _owner(real)
    if owner and command and owner != command:
        raise SelfsimError(f"{flag} {shown} holds the output of `selfsim {owner}`; a command never writes into another's: give a new directory")
    if real.is_dir() and not is_marked(real):
        kind = dir_kind(real)
        if kind:
            raise SelfsimError(
                f"{flag} {shown} is a {kind} directory; selfsim never writes into a model or adapter it did not make: "
                "give a new directory"
            )
        held = sorted(p.name for p in _listdir(real, shown, flag) if not _is_temporary(p.name))
        if held:
            raise SelfsimError(
                f"{flag} {shown} already holds files selfsim did not write ({', '.join(held[:3])}{', ...' if len(held) > 3 else ''}); "
                f"give a new or empty directory (a run of an older selfsim: create {shown / MARKER} to resume it)"
            )
    if real.is_dir() and not os.access(real, os.W_OK | os.X_OK):
        raise SelfsimError(f"{flag} {shown} cannot be written: no write permission")
    _check_parent_writable(real, shown, flag)
    _mark(real, shown, flag)
    return shown


@_one_line
def claim_file(
    path: str | Path,
    *,
    flag: str = "--out",
    reads: Iterable[str | Path] = (),
    looks_like: Callable[[Path], bool] | None = None,
    what: str = "output",
) -> Path:
    """Check that an output file may be written (created or replaced); create nothing; return it (as given).

    An existing file is replaced only if `looks_like(path)` says it is what this command writes (`what`).
    """
    shown = Path(path).expanduser()
    real = _resolve(path, flag)
    if real.is_dir():
        raise SelfsimError(f"{flag} {shown} is a directory; give a file path")
    _check_common(real, shown, flag, reads, file=True)
    if real.exists() and real.stat().st_size > 0:
        if real.name in _MODEL_FILES + _ADAPTER_FILES or real.name.endswith(_WEIGHT_SUFFIXES):
            raise SelfsimError(f"{flag} {shown} is a model or adapter file; selfsim never overwrites one: give a new path")
        if looks_like is not None and not looks_like(real):
            raise SelfsimError(f"{flag} {shown} exists and is not {what} selfsim wrote; give a new path (or delete it)")
    _check_parent_writable(real, shown, flag)
    return shown


def release() -> None:
    """Remove what this process's claims created and that still holds nothing else (after a failed command)."""
    while _created:
        path = _created.pop()
        try:
            if path.name == MARKER:
                if [p.name for p in path.parent.iterdir()] == [MARKER]:
                    path.unlink()
            else:
                path.rmdir()
        except OSError:
            pass


def forget() -> None:
    """Keep what the claims created (the command succeeded or wrote results)."""
    _created.clear()


def _owner(path: Path) -> str | None:
    """The command whose output claim marked `path` (None: not marked, or marked by a library call)."""
    try:
        record = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    owner = record.get("command") if isinstance(record, dict) else None
    return owner if isinstance(owner, str) else None


def _listdir(path: Path, shown: Path, flag: str) -> list[Path]:
    try:
        return list(path.iterdir())
    except OSError as exc:
        raise SelfsimError(f"{flag} {shown} cannot be read: {describe_os_error(exc)}") from None


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def _mark(real: Path, shown: Path, flag: str) -> None:
    from selfsim import __version__

    missing = [p for p in (real, *real.parents) if not p.exists()]
    try:
        real.mkdir(parents=True, exist_ok=True)
        _created.extend(reversed(missing))
        marker = real / MARKER
        if not marker.exists():
            marker.write_text(json.dumps({"command": command, "made_by": "selfsim", "version": __version__}, sort_keys=True) + "\n", encoding="utf-8")
            _created.append(marker)
    except OSError as exc:
        raise SelfsimError(f"{flag} {shown} cannot be created: {describe_os_error(exc)}") from None


def describe_os_error(exc: OSError) -> str:
    """An OSError as 'cause (ERRNO)' without the path, e.g. 'No space left on device (ENOSPC)'."""
    name = errno.errorcode.get(exc.errno or 0, "")
    cause = exc.strerror or str(exc) or type(exc).__name__
    return f"{cause} ({name})" if name else cause


def os_error_line(exc: OSError) -> str:
    """One line for a file-system error: the path(s), the cause, and what a rerun does."""
    where = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT) or _ENOSPC_TEXT.search(str(exc))
    cause = describe_os_error(exc) if exc.errno or not full else "No space left on device (ENOSPC)"
    hint = "; free some space and rerun: finished work is kept and resumes" if full else ""
    return f"{where + ': ' if where else ''}{cause}{hint}"


_ENOSPC_TEXT = re.compile(r"No space left on device|os error 28|StorageFull|Disk quota exceeded", re.IGNORECASE)


def os_error_line_of(exc: BaseException) -> str | None:
    """One line for an exception caused by the file system (an OSError anywhere in its chain, or a library's
    wrapped out-of-space error); None for anything else."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and (current.errno is not None or current.filename is not None):
            return os_error_line(current)
        current = current.__cause__
    text = str(exc)
    if _ENOSPC_TEXT.search(text):
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        return f"No space left on device (ENOSPC) while writing ({type(exc).__name__}: {first[:200]}); free some space and rerun: finished work is kept and resumes"
    if "PytorchStreamWriter failed writing" in text:  # torch.save's wrapped write error (a full disk, most often)
        return f"a file write failed in torch.save ({text.splitlines()[0][:200]}); check free space and rerun: finished work resumes"
    if isinstance(exc, RuntimeError) and text.startswith("Symlink loop"):
        return f"{text}: a symbolic-link loop in the path"
    return None


def jsonl_with(*keys: str) -> Callable[[Path], bool]:
    """A `looks_like` for claim_file: the file's first line is a JSON object holding `keys` (what selfsim writes)."""

    def check(path: Path) -> bool:
        try:
            with open(path, "rb") as fh:
                first = fh.readline(2**20)
            row = json.loads(first)
        except (OSError, ValueError):
            return False
        return isinstance(row, dict) and all(k in row for k in keys)

    return check


def json_with(*keys: str) -> Callable[[Path], bool]:
    """A `looks_like` for claim_file: the file is a JSON object (under 64 MiB) holding `keys`."""

    def check(path: Path) -> bool:
        try:
            if path.stat().st_size > 64 * 2**20:
                return False
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(obj, dict) and all(k in obj for k in keys)

    return check
