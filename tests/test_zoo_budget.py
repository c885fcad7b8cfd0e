"""The cost model of real-model studies: the smollm2 presets' sizes, the CPU budget, counts that follow the config."""

from __future__ import annotations

import pytest

from selfsim.errors import SelfsimError
from selfsim.study.config import preset
from selfsim.tasks import get_task
from selfsim.zoo.budget import SMOLLM2_CPU, SMOLLM2_GPU_GUESS, check_budget, counts, estimate


def test_cpu_preset_fits_45_minutes_and_uses_the_paper_lora_shape() -> None:
    cpu = preset("smollm2")
    assert (cpu.rank, cpu.alpha, cpu.dialect) == (32, 64.0, "paper")
    minutes = estimate(cpu, SMOLLM2_CPU)
    assert minutes["total"] == pytest.approx(sum(v for k, v in minutes.items() if k != "total"), abs=0.5)
    assert check_budget(cpu, SMOLLM2_CPU) <= 45
    assert all(get_task(t).split == "train" for t in cpu.train_tasks)
    assert all(get_task(t).split == "test" for t in cpu.test_tasks)
    assert "animals_long" not in cpu.test_tasks  # degenerate on the untrained model (BENCHMARKS.md)


def test_gpu_preset_is_larger_bf16_one_epoch_and_over_the_cpu_budget() -> None:
    cpu, gpu = preset("smollm2"), preset("smollm2-gpu")
    assert gpu.n_train > cpu.n_train and set(cpu.properties) < set(gpu.properties)
    assert (gpu.epochs, gpu.dtype, gpu.rank) == (1.0, "bfloat16", 32)
    with pytest.raises(SelfsimError, match="over its 45 min budget"):
        check_budget(gpu, SMOLLM2_CPU)
    assert "NOT measured" in SMOLLM2_GPU_GUESS.source


def test_counts_follow_the_config_by_hand() -> None:
    from dataclasses import replace

    c = replace(preset("smollm2"), n_train=32, n_eval=24, scaling=(16,), full_control=(16,), epochs=2.0, batch_size=8)
    n = counts(c)
    # 16 train + 12 eval_id prompts per train task (x2), 24 eval_ood: 80 object prompts, behaviour of M1, M2, M1ft
    # on all of them and of the cross and shift models on the 48 held-out ones.
    assert n["object_prompts"] == 3 * 80 + 2 * 48
    # 64 items -> 16 steps (self, cross); 32 items -> 8 steps (scaling, full self, full cross); shift 32 -> 8.
    assert n["finetune_steps"] == 2 * 16 + 8 + 2 * 8 + 8
    assert n["meta_prompts"] == (4 + 1 + 1 + 2) * 48 * 2


def test_projection_by_hand_and_larger_for_the_gpu_preset() -> None:
    from dataclasses import replace

    from selfsim.zoo.budget import Hardware, project, stage_group

    c = replace(preset("smollm2"), n_train=32, n_eval=24, scaling=(16,), full_control=(16,), epochs=2.0, batch_size=8)
    slow = Hardware("test", flops=1e12, decode_step_s=0.0, source="test")
    minutes = project(c, slow, params=1e9)
    # 64 finetune steps x 8 rows x 100 tokens x 6 FLOPs per parameter and token x 1e9 parameters at 1e12 FLOP/s.
    assert minutes["finetune"] == pytest.approx(64 * 8 * 100 * 6 * 1e9 / 1e12 / 60, abs=0.01)
    assert project(preset("smollm2-gpu"))["total"] > project(preset("smollm2"))["total"]
    assert [stage_group(s) for s in ("finetune a__b/self", "predictions a", "interp probes", "examples")] == [
        "finetune", "predictions", "interp", "other"]
