"""benchmarks/gpu_check.py in its CPU --tiny mode: every stage runs and fills its row, so the GPU script cannot rot."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def gpu_check():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import gpu_check

        yield gpu_check
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_tiny_mode_fills_every_row(gpu_check, tmp_path, capsys):
    result = gpu_check.main(["--tiny", "--json", str(tmp_path / "check.json")])
    rows = {row["figure"]: row for row in result["rows"]}
    failed = [f"{r['figure']}: {r['note']}" for r in result["rows"] if r["note"].startswith("failed")]
    assert not failed, failed
    label = "tiny random Llama, float32"
    for figure in (f"{label}: plain forward", f"{label}: batched sweep throughput / plain forward", f"{label}: LoRA r32 step",
                   f"{label}: edit-transfer step (MLP block 1 only)", f"{label}: device_map='auto' load",
                   "tiny (SmolLM2 stand-in): collect (greedy, batch 4)", "tiny (SmolLM2 stand-in): LoRA r32 step"):
        value = rows[figure]["value"]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, (figure, value)
    for backend in ("hooks", "nnsight", "tlens"):
        ratios = rows[f"{label}: {backend} / plain forward (no-op · read all · patch all)"]["value"]
        assert all(float(x) > 0 for x in ratios.split(" · "))
    assert rows[f"{label}: LoRA r32 step MFU"]["value"] is None  # no claimed peak for a CPU
    assert all(row["card"] == result["card"] and result["card"].startswith("CPU") for row in result["rows"])
    table = capsys.readouterr().out
    assert table.count("\n| ") == len(result["rows"]) and (tmp_path / "check.json").exists()


def test_known_cards_have_a_peak(gpu_check):
    assert gpu_check.peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert gpu_check.peak_flops("NVIDIA H100 PCIe") == 756e12
    assert gpu_check.peak_flops("NVIDIA H200") == 989e12
    assert gpu_check.peak_flops("CPU Intel Xeon") is None
