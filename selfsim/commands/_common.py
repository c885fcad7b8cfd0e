"""Arguments shared by every command that loads a model, and the early check of output paths."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from selfsim.errors import SelfsimError

if TYPE_CHECKING:
    from selfsim.models import Subject


def add_model_args(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """Add --model, --dtype, --device-map, --adapter and --trust-remote-code."""
    parser.add_argument("--model", required=required, help="embedded name (toy-m1, toy-m2), local HF directory or hub id")
    parser.add_argument("--dtype", default="float32", help="float32 (default), bfloat16 or float16")
    parser.add_argument(
        "--device-map", default=None, help='none (default), auto, balanced, a device (cuda:0) or a JSON {"module": device}'
    )
    parser.add_argument("--adapter", default=None, help="a peft adapter directory to apply")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow model code from the checkpoint (off by default)")
    parser.add_argument(
        "--allow-pickle-weights", action="store_true",
        help="also load pytorch_model.bin / adapter_model.bin, with torch.load(weights_only=True) (default: safetensors only)",
    )
    parser.add_argument("--build-toy", action="store_true", help="pretrain a toy model (toy-m3, ...) now if it is not built yet")


def model_options(args: argparse.Namespace) -> dict[str, object]:
    """The load_subject options the shared model arguments give (all but the model and adapter)."""
    return {
        "dtype": args.dtype,
        "device_map": parse_device_map(args.device_map),
        "trust_remote_code": args.trust_remote_code,
        "allow_pickle_weights": getattr(args, "allow_pickle_weights", False),
        "build_toy": getattr(args, "build_toy", False),
    }


def check_out(path: str | Path, *, kind: str = "dir", flag: str = "--out") -> Path:
    """Raise unless `path` can be written as a directory (kind "dir") or a file (kind "file"); create nothing."""
    path = Path(path).expanduser()
    if path.exists():
        if kind == "dir" and not path.is_dir():
            raise SelfsimError(f"{flag} {path} is an existing file; give a directory (new or existing)")
        if kind == "file" and path.is_dir():
            raise SelfsimError(f"{flag} {path} is a directory; give a file path")
    parent = path if kind == "dir" and path.is_dir() else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise SelfsimError(f"{flag} {path} cannot be created: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SelfsimError(f"{flag} {path} cannot be written: no write permission in {parent}")
    return path


def parse_device_map(value: str | None) -> object:
    """--device-map's value as load_subject takes it (JSON objects are parsed)."""
    if value is None or value.lower() == "none":
        return None
    if value.lstrip().startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise SelfsimError(f"--device-map is not valid JSON ({exc.msg})") from None
    return value


def subject_from_args(args: argparse.Namespace, **kwargs: object) -> Subject:
    """Load the subject named by the shared model arguments."""
    from selfsim.models import load_subject

    return load_subject(args.model, adapter=args.adapter, **model_options(args), **kwargs)
