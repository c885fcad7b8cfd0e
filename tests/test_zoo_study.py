"""The recommended SmolLM2 study settings: valid finetune preset, within the CPU budget, a larger GPU setting."""

from __future__ import annotations

import pytest

from selfsim.errors import SelfsimError
from selfsim.tasks import get_task
from selfsim.zoo_study import SMOLLM2_CPU, SMOLLM2_GPU_GUESS, check_budget, smollm2_settings


def test_cpu_settings_fit_45_minutes_and_use_the_paper_lora_preset() -> None:
    cpu = smollm2_settings("cpu")
    config = cpu.finetune_config()
    assert (config.rank, config.alpha, config.steps) == (32, 64.0, cpu.finetune["steps"])
    estimate = cpu.estimate(SMOLLM2_CPU)
    assert estimate["total"] == pytest.approx(sum(v for k, v in estimate.items() if k != "total"), abs=0.5)
    assert check_budget(cpu, SMOLLM2_CPU) <= 45
    for task in cpu.train_tasks:
        assert get_task(task).split == "train"
    for task in cpu.test_tasks:
        assert get_task(task).split == "test"
    assert "animals_long" not in cpu.test_tasks  # degenerate on the untrained model (BENCHMARKS.md)
    assert cpu.to_dict()["derive"]["rank"] == 32


def test_gpu_setting_is_larger_and_its_finetune_is_one_epoch() -> None:
    cpu, gpu = smollm2_settings("cpu"), smollm2_settings("gpu")
    assert gpu.n_train_prompts > cpu.n_train_prompts and set(cpu.properties) < set(gpu.properties)
    config = gpu.finetune_config()
    assert config.epochs == 1.0 and config.steps is None and config.rank == 32
    with pytest.raises(SelfsimError, match="over its 45 min budget"):
        check_budget(gpu.__class__(**{**gpu.__dict__, "profile": "cpu"}), SMOLLM2_CPU)
    assert "NOT measured" in SMOLLM2_GPU_GUESS.source


def test_unknown_profile_names_the_valid_ones() -> None:
    with pytest.raises(SelfsimError, match="valid profiles are cpu, gpu"):
        smollm2_settings("tpu")
