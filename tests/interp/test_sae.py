"""SAEs: training on planted sparse data, sae-lens save/load round trip, FVU and dead share by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from selfsim.errors import SelfsimError
from selfsim.interp.sae import (
    Quality,
    SAEConfig,
    SAEStudyConfig,
    answer_latents,
    encode_latents,
    latent_readout,
    load_sae,
    reconstruct,
    sae_figure,
    sae_study,
    train_sae,
)

from test_probes import toy_examples, toy_subjects  # noqa: F401  (toy_subjects is a fixture)

D_IN, N_FEATURES = 32, 64


def sparse_data(n: int, seed: int) -> torch.Tensor:
    """Sums of a few of 64 fixed unit directions with random positive weights (5% density)."""
    g = torch.Generator().manual_seed(0)
    dictionary = torch.randn(N_FEATURES, D_IN, generator=g)
    dictionary /= dictionary.norm(dim=1, keepdim=True)
    g.manual_seed(seed)
    z = (torch.rand(n, N_FEATURES, generator=g) < 0.05) * torch.rand(n, N_FEATURES, generator=g) * 3
    return z @ dictionary


def batches(data: torch.Tensor, size: int):
    g = torch.Generator().manual_seed(0)
    while True:
        yield data[torch.randint(0, len(data), (size,), generator=g)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("sae") / "layer_1"
    config = SAEConfig(d_sae=128, k=8, steps=300, batch_size=256, lr=1e-3)
    sae, stats = train_sae(batches(sparse_data(20000, 1), 256), D_IN, out, config, hook_name="model.layers.1", model_name="planted")
    return sae, stats, out


def test_sae_learns_planted_sparse_data(trained):
    sae, stats, _ = trained
    quality = Quality(sae.cfg.d_sae)
    quality.add(sae, sparse_data(2000, 2))
    assert quality.fvu < 0.3
    assert 0 <= quality.dead_share < 0.5 and 0 <= stats["dead_share_train"] <= 1
    assert stats["l0_train"] == pytest.approx(8, abs=0.01)
    assert ((encode_latents(sae, sparse_data(10, 3)) != 0).sum(1) == 8).all()


def test_saved_sae_is_sae_lens_format_and_round_trips_exactly(trained, tmp_path):
    sae, _, out = trained
    assert sorted(p.name for p in out.iterdir()) == ["cfg.json", "sae_weights.safetensors"]
    cfg = json.loads((out / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and cfg["metadata"]["hook_name"] == "model.layers.1"
    sae.save_model(tmp_path / "again")
    again = load_sae(tmp_path / "again")
    x = sparse_data(50, 4)
    assert torch.equal(encode_latents(again, x), encode_latents(sae, x))
    assert torch.equal(reconstruct(again, x)[1], reconstruct(sae, x)[1])
    with pytest.raises(SelfsimError, match="not an sae-lens SAE directory"):
        load_sae(tmp_path)


def test_fvu_and_dead_share_by_hand_equal_sae_lens(trained):
    """A 6-row case: FVU against numpy and sae-lens's ExplainedVarianceCalculator, dead share against SAETrainer."""
    from sae_lens import LoggingConfig, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig
    from sae_lens.evals import ExplainedVarianceCalculator
    from sae_lens.training.sae_trainer import SAETrainer

    sae, _, _ = trained
    x = sparse_data(6, 5)
    acts, recon = reconstruct(sae, x)
    xn, rn = x.double().numpy(), recon.double().numpy()
    fvu_hand = ((xn - rn) ** 2).sum() / ((xn - xn.mean(0)) ** 2).sum()
    never_fired = (acts.numpy() == 0).all(0)
    quality = Quality(sae.cfg.d_sae)
    quality.add(sae, x)
    calc = ExplainedVarianceCalculator()
    calc.add_batch(sae_output=recon, hidden_acts=x)
    assert quality.fvu == pytest.approx(fvu_hand, rel=1e-9)
    assert 1 - calc.compute() == pytest.approx(fvu_hand, rel=1e-5)
    assert quality.dead_share == pytest.approx(never_fired.mean()) and 0.3 < never_fired.mean() < 1

    # sae-lens counts a latent dead when it has not fired for more than `dead_feature_window` steps:
    # three steps with lr 0 on the same 6 rows leave exactly the never-firing latents dead.
    cfg = TopKTrainingSAEConfig(d_in=D_IN, d_sae=sae.cfg.d_sae, k=sae.cfg.k, dtype="float32", device="cpu")
    twin = TopKTrainingSAE(cfg)
    twin.load_state_dict(sae.state_dict())
    trainer_cfg = SAETrainerConfig(total_training_samples=18, train_batch_size_samples=6, lr=0.0, lr_end=0.0,
                                   dead_feature_window=2, logger=LoggingConfig(log_to_wandb=False))
    trainer = SAETrainer(trainer_cfg, twin, iter([x] * 3))
    trainer.fit()
    assert trainer.dead_neurons.numpy().tolist() == never_fired.tolist()


def test_answer_latents_find_the_planted_class_latent():
    rng = np.random.default_rng(0)
    labels = [f"c{i}" for i in rng.integers(0, 3, 300)]
    acts = torch.relu(torch.randn(300, 20)) * 0.1
    for row, c in enumerate(labels):
        acts[row, 5 + int(c[1])] += 2.0  # class c lights latent 5 + c
    chosen = answer_latents(acts[:200], labels[:200])
    assert chosen == {"c0": 5, "c1": 6, "c2": 7}
    held = latent_readout(acts[200:], labels[200:], chosen, acts[:200])
    assert held["auroc"] == 1.0 and held["readout"] == 1.0 and held["n_classes"] == 3
    shuffled = latent_readout(acts[200:], list(rng.permutation(labels[200:])), chosen, acts[:200])
    assert shuffled["auroc"] < 0.75


def test_sae_study_on_two_toy_subjects(toy_subjects, tmp_path):
    config = SAEStudyConfig(layers=[1], sae=SAEConfig(d_sae=64, k=4, steps=40, batch_size=64), train_tokens=6, min_count=2)
    results = sae_study(toy_subjects, toy_examples(30), tmp_path, config)
    assert set(results["subjects"]) == {"m1", "m2"}
    entry = results["subjects"]["m2"]["1"]
    assert 0 < entry["fvu"] < 2 and 0 <= entry["dead_share"] <= 1 and entry["n_vectors"] > 0
    assert {"own:first_token", "m1:first_token", "own:property", "m1:property"} <= entry.keys()
    assert load_sae(entry["sae_dir"]).cfg.d_sae == 64
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["subjects"]["m1"]["1"]["fvu"] == pytest.approx(results["subjects"]["m1"]["1"]["fvu"])
    assert SAEStudyConfig.load(tmp_path / "config.json") == config
    assert len(sae_figure(results).data) > 0


def test_sae_command_trains_and_reports(toy_subjects, tmp_path, capsys):
    from selfsim.cli import main

    code = main(["sae", "--model", str(toy_subjects["m1"].path), "--n", "20", "--layers", "2", "--d-sae", "32", "--k", "4",
                 "--steps", "20", "--batch-size", "32", "--train-tokens", "4", "--no-progress", "--out", str(tmp_path)])
    assert code == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["layer"] == 2 and 0 < line["fvu"] < 2
    assert (tmp_path / "sae.html").is_file() and (tmp_path / "saes").is_dir()
