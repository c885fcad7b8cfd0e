"""One GPU check, ready before a GPU appears: every figure of issue 19 in one table, the card named on each row.

On one H100 / H200 (<= 8 min): a random-weight Llama-3.1-8B config in bf16 (no weights needed) —
plain forward tokens/s; the batched patch sweep's throughput as a share of the plain forward
(goal >= 50%); hooks / nnsight / tlens overhead over a plain forward; one LoRA r=32 training step's
MFU (goal >= 30%); the edit-transfer step (an object-only weight edit of one MLP block: a few AdamW
steps on that module only); a `device_map="auto"` load of the same config (saved once as
safetensors); then SmolLM2-135M-Instruct stage speeds in bf16 (collect, finetune step, patch) —
the fetched model if this machine has it, else a random model of its shape (the row says which).
`--tiny` runs the same code on a 2-layer random model on the CPU in seconds (the tests run it, so the
script cannot rot). A stage that fails prints its error in its row; the others still run.
Run: `.venv/bin/python benchmarks/gpu_check.py --json benchmarks/out/gpu_check.json` (CPU: `--tiny`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_patching  # noqa: E402

# Dense bf16 peak (no sparsity), FLOP/s, by a substring of the card name.
PEAK_BF16 = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12}
SMOLLM2_SHAPE = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                     num_key_value_heads=3, vocab_size=49152)


def card_name(device: str) -> str:
    """The accelerator's name, or the CPU's model name."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"CPU {line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    except OSError:
        pass
    return "CPU"


def peak_flops(card: str) -> float | None:
    """Dense bf16 peak of a known card, else None (no MFU is claimed)."""
    return next((peak for key, peak in PEAK_BF16.items() if key in card), None)


class Check:
    """Collects table rows; each stage runs in `stage`, which records its error instead of stopping."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.card = card_name(device)
        self.rows: list[dict[str, Any]] = []
        self.sync: Callable[[], None] = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def add(self, figure: str, value: float | str | None, unit: str = "", goal: str = "", note: str = "") -> None:
        self.rows.append({"figure": figure, "value": value, "unit": unit, "goal": goal, "card": self.card, "note": note})

    def stage(self, name: str, fn: Callable[[], None]) -> None:
        start = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # a GPU check must print every row it can; the error is the row
            self.add(name, None, note=f"failed: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
        finally:
            self.free()
        print(f"[{time.perf_counter() - start:6.1f} s] {name}", file=sys.stderr, flush=True)

    def free(self) -> None:
        import gc

        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    def timed(self, fn: Callable[[], object], repeats: int) -> float:
        """Median seconds of `fn` after one warm-up call."""
        fn()
        self.sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2]

    def table(self) -> str:
        lines = ["| figure | value | unit | goal | card | note |", "|---|---|---|---|---|---|"]
        for r in self.rows:
            value = r["value"]
            shown = f"{value:.4g}" if isinstance(value, float) else ("-" if value is None else str(value))
            lines.append(f"| {r['figure']} | {shown} | {r['unit']} | {r['goal']} | {r['card']} | {r['note']} |")
        return "\n".join(lines)


def random_ids(subject, batch: int, length: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    low = 10 if len(subject.tokenizer) > 20 else 0
    return torch.randint(low, len(subject.tokenizer), (batch, length), generator=generator).to(subject.input_device)


def forward_rate(check: Check, subject, batch: int, length: int, repeats: int) -> float:
    """Plain HF forward tokens/s (final-position logits, as patching reads them)."""
    ids = random_ids(subject, batch, length)

    def plain() -> object:
        with torch.no_grad():
            return subject.base(input_ids=ids, use_cache=False, logits_to_keep=1)

    return batch * length / check.timed(plain, repeats)


def sweep_share(check: Check, subject, pairs: int, layers: tuple[int, ...] | None, repeats: int, label: str) -> None:
    """Batched resumed sweep: patched-row tokens/s as a share of a plain forward over the same rows."""
    from selfsim.interp.patching import PatchConfig, patch_rows, setups
    from selfsim.tasks import generate

    examples = generate("animals_long", "first_word", n=pairs, seed=0, dialect="toy")
    config = PatchConfig(layers=layers, positions="each", backend="hooks", max_rows=64)
    setup = next(setups([subject], examples, config))[0]
    chosen = config.layers_for(subject)
    n_rows = len(patch_rows(setup, ("resid",), chosen, "each")) // 2
    seconds = check.timed(lambda: patch_rows(setup, ("resid",), chosen, "each"), repeats)
    rows_tokens = n_rows * setup.recipients.width
    plain = forward_rate(check, subject, min(64, n_rows), setup.recipients.width, repeats)
    check.add(f"{label}: batched patch sweep, patched-row tokens/s", rows_tokens / seconds, "tok/s",
              note=f"{n_rows} rows x {setup.recipients.width} tokens, layers {chosen[0]}..{chosen[-1]}, resumed from the patched layer")
    check.add(f"{label}: batched sweep throughput / plain forward", rows_tokens / seconds / plain, "x", ">= 0.5")


def lora_step(check: Check, subject, batch: int, length: int, repeats: int, label: str) -> None:
    """One LoRA r=32 (alpha 64, all 7 projections) AdamW step: seconds, tokens/s and MFU (4 N FLOPs per token)."""
    from peft import LoraConfig, get_peft_model

    model = subject.base
    n_params = sum(p.numel() for p in model.parameters())
    config = LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0, task_type="CAUSAL_LM",
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    peft_model = get_peft_model(model, config)
    peft_model.train()
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-4)
    ids = random_ids(subject, batch, length)

    def step() -> None:
        out = peft_model(input_ids=ids, labels=ids, use_cache=False)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds = check.timed(step, repeats)
    # frozen base: forward 2N + backward through activations 2N per token (adapter weight grads are ~1%)
    flops = 4 * n_params * batch * length
    peak = peak_flops(check.card)
    check.add(f"{label}: LoRA r32 step", seconds, "s", note=f"batch {batch} x {length} tokens, {n_params / 1e9:.2f}B params")
    check.add(f"{label}: LoRA r32 training tokens/s", batch * length / seconds, "tok/s")
    check.add(f"{label}: LoRA r32 step MFU", None if peak is None else flops / seconds / peak, "of bf16 peak", ">= 0.30",
              "" if peak is not None else "no known peak for this card")
    peft_model.unload()
    model.eval()


def edit_step(check: Check, subject, batch: int, length: int, repeats: int, steps: int, label: str) -> None:
    """Edit transfer: `steps` AdamW steps on one middle MLP block only (every other weight frozen)."""
    model = subject.base
    layer = subject.n_layers // 2
    block = subject.module(f"model.layers.{layer}.mlp")
    for p in model.parameters():
        p.requires_grad_(False)
    params = list(block.parameters())
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    ids = random_ids(subject, batch, length)

    def edit() -> None:
        for _ in range(steps):
            logits = model(input_ids=ids, use_cache=False, logits_to_keep=1).logits[:, -1].float()
            loss = torch.nn.functional.cross_entropy(logits, ids[:, 0])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    seconds = check.timed(edit, repeats)
    for p in params:
        p.requires_grad_(False)
    check.add(f"{label}: edit-transfer step (MLP block {layer} only)", seconds / steps, "s/step",
              note=f"{sum(p.numel() for p in params) / 1e6:.0f}M trainable params, batch {batch} x {length}, {steps} steps")


def overhead(check: Check, subject, pairs: int, repeats: int, label: str, backends: list[str]) -> None:
    from selfsim.tasks import generate

    examples = generate("animals_long", "first_word", n=pairs, seed=0, dialect="toy")
    for backend in backends:
        try:
            figures = bench_patching.hook_overhead(subject, examples, [backend], repeats, check.sync)
        except Exception as exc:  # one backend failing (e.g. tlens on a split model) keeps the others
            check.add(f"{label}: {backend} overhead", None, note=f"failed: {type(exc).__name__}: {str(exc)[:160]}")
            continue
        check.add(f"{label}: {backend} / plain forward (no-op · read all · patch all)",
                  " · ".join(f"{figures[f'{backend}_{k}_vs_plain']:.3f}" for k in ("noop", "read", "patch")), "x", "<= 1.3")


def auto_load(check: Check, subject, workdir: Path, label: str, dtype: str) -> None:
    """Save the random model as safetensors once, then time `load_subject(dir, device_map="auto")`."""
    from selfsim.models import load_subject

    path = workdir / "saved"
    start = time.perf_counter()
    subject.base.save_pretrained(path)
    subject.tokenizer.save_pretrained(path)
    saved = time.perf_counter() - start
    size = sum(f.stat().st_size for f in path.glob("*.safetensors")) / 2**30
    start = time.perf_counter()
    loaded = load_subject(str(path), dtype=dtype, device_map="auto")
    check.sync()
    seconds = time.perf_counter() - start
    devices = sorted({str(p.device) for p in loaded.base.parameters()})
    check.add(f"{label}: device_map='auto' load", seconds, "s", note=f"{size:.2f} GiB safetensors on {', '.join(devices)} (save {saved:.0f} s)")
    del loaded


def smollm2(check: Check, device: str, dtype: str, tiny: bool, workdir: Path, repeats: int) -> None:
    """SmolLM2 study stage speeds: greedy collection, one LoRA finetune step, the patch sweep."""
    import bench_collect

    from selfsim.errors import SelfsimError
    from selfsim.models import load_subject

    label = "SmolLM2-135M"
    subject = None
    if not tiny:
        try:
            subject = load_subject("smollm2-135m-instruct", dtype=dtype, device_map=device, attn_implementation="eager")
        except SelfsimError:
            subject = None
    if subject is None:
        label = "SmolLM2 shape, random" if not tiny else "tiny (SmolLM2 stand-in)"
        shape = "tiny" if tiny else "smollm2"
        subject = bench_patching.random_subject(shape, device, dtype, workdir / "smol_tok") if shape == "tiny" else \
            random_with_shape(SMOLLM2_SHAPE, device, dtype, workdir / "smol_tok")
    n = 4 if tiny else 64
    examples = bench_collect.toy_examples(n, "toy")
    bench_collect.batched(subject, examples[:2], 2)
    start = time.perf_counter()
    bench_collect.batched(subject, examples, n)
    seconds = time.perf_counter() - start
    check.add(f"{label}: collect (greedy, batch {n})", n / seconds, "prompts/s")
    sweep_share(check, subject, 2 if tiny else 8, None, repeats, label)
    lora_step(check, subject, 2 if tiny else 16, 32 if tiny else 256, repeats, label)


def random_with_shape(shape: dict[str, Any], device: str, dtype: str, workdir: Path):
    bench_patching.CONFIGS["smollm2"] = shape
    workdir.mkdir(parents=True, exist_ok=True)
    return bench_patching.random_subject("smollm2", device, dtype, workdir)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a 2-layer random model on the CPU, in seconds (the tests' mode)")
    parser.add_argument("--device", default=None, help="default cuda when available, else cpu")
    parser.add_argument("--skip", default="", help="comma list of stages to skip: forward, sweep, overhead, lora, edit, load, smollm2")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    dtype = "float32" if device == "cpu" else "bfloat16"
    config = "tiny" if args.tiny else "llama3-8b"
    skip = set(filter(None, args.skip.split(",")))
    repeats = 2 if args.tiny else 5
    check = Check(device)
    workdir = tempfile.TemporaryDirectory(prefix="gpu_check_")
    work = Path(workdir.name)
    start = time.perf_counter()
    subject = bench_patching.random_subject(config, device, dtype, work)
    label = f"Llama-3.1-8B shape, random, {dtype}" if not args.tiny else f"tiny random Llama, {dtype}"
    batch, length = (2, 32) if args.tiny else (16, 512)
    stages: list[tuple[str, Callable[[], None]]] = [
        ("forward", lambda: check.add(f"{label}: plain forward", forward_rate(check, subject, batch, length, repeats), "tok/s",
                                      note=f"batch {batch} x {length}")),
        ("sweep", lambda: sweep_share(check, subject, 2 if args.tiny else 4, None if args.tiny else (0, 8, 16, 24, 31), repeats, label)),
        # 8B: batch 4 x 512 keeps the stored activations of a step (~16 GiB) beside the 16 GiB of weights
        ("lora", lambda: lora_step(check, subject, batch if args.tiny else 4, length, repeats, label)),
        ("edit", lambda: edit_step(check, subject, batch if args.tiny else 4, length, 1 if args.tiny else 2, 3, label)),
        ("load", lambda: auto_load(check, subject, work, label, dtype)),
        # tlens rewraps the model in place and nnsight refuses a rewrapped one: overhead comes last
        ("overhead", lambda: overhead(check, subject, 2 if args.tiny else 8, 3 if args.tiny else 10, label, ["hooks", "nnsight", "tlens"])),
    ]
    for name, fn in stages:
        if name not in skip:
            check.stage(name, fn)
    subject = None  # frees the 8B weights before the SmolLM2 stage
    check.free()
    if "smollm2" not in skip:
        check.stage("smollm2", lambda: smollm2(check, device, dtype, args.tiny, work, repeats))
    workdir.cleanup()
    result = {"card": check.card, "device": device, "dtype": dtype, "seconds": round(time.perf_counter() - start, 1),
              "rows": check.rows}
    print(check.table())
    print(f"total {result['seconds']} s on {check.card}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
