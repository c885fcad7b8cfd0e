"""Issue 18: a full disk, Ctrl-C and over-long prompts end in one line, and a rerun resumes to the same bytes.

Full disks are simulated by the `write` fault point of selfsim.io (`SELFSIM_FAULT=write@N:enospc`) and,
where this process may mount one, by a real tiny tmpfs; Ctrl-C by a real SIGINT (the `interrupt` fault
action, or a signal sent at a random time to a subprocess).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import selfsim.io as io
from selfsim import interrupt
from selfsim.cli import main
from selfsim.examples import save_examples
from selfsim.tasks import generate

ROOT = Path(__file__).resolve().parents[1]
QUIET = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
         "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    for key, value in QUIET.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SELFSIM_FAULT", raising=False)
    monkeypatch.setattr(io, "_FAULT_HITS", {})


@pytest.fixture
def examples(tmp_path) -> Path:
    path = tmp_path / "ex.jsonl"
    save_examples(path, generate("animals_long", "first_word", n=6, seed=0, dialect="toy"))
    return path


def run_cli(capsys, *args, fault: str | None = None, monkeypatch=None) -> tuple[int, list[str]]:
    if fault is not None:
        assert monkeypatch is not None
        monkeypatch.setenv("SELFSIM_FAULT", fault)
        monkeypatch.setattr(io, "_FAULT_HITS", {})
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    finally:
        if monkeypatch is not None:
            monkeypatch.delenv("SELFSIM_FAULT", raising=False)
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip() and "Loading weights" not in line]


def collect_args(examples: Path, out: Path) -> list:
    return ["collect", "--model", "toy-m1", "--examples", examples, "--out", out, "--batch-size", "2", "--no-progress"]


@pytest.mark.parametrize("nth", [1, 2, 3])
def test_full_disk_in_collect_is_one_line_and_resumes_to_the_same_bytes(tmp_path, examples, capsys, monkeypatch, nth):
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert run_cli(capsys, *collect_args(examples, ref))[0] == 0
    code, lines = run_cli(capsys, *collect_args(examples, out), fault=f"write@{nth}:enospc", monkeypatch=monkeypatch)
    assert code == 2 and len(lines) == 1, lines
    assert "No space left on device (ENOSPC)" in lines[0] and str(out) in lines[0] and "rerun" in lines[0]
    assert run_cli(capsys, *collect_args(examples, out))[0] == 0
    for name in ("behavior.jsonl", "behavior.parquet"):
        assert (out / name).read_bytes() == (ref / name).read_bytes()


def test_full_disk_in_data_generate_leaves_no_file(tmp_path, capsys, monkeypatch):
    out = tmp_path / "ex.jsonl"
    code, lines = run_cli(capsys, "data", "generate", "--task", "animals_long", "--n", "3", "--out", out,
                          fault="write:enospc", monkeypatch=monkeypatch)
    assert code == 2 and len(lines) == 1 and f"{out}: No space left on device" in lines[0], lines
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_full_disk_in_finetune_resumes_to_the_same_adapter(tmp_path, examples, capsys, monkeypatch):
    labels = tmp_path / "labels"
    assert run_cli(capsys, *collect_args(examples, labels))[0] == 0

    def finetune(out: Path, *extra: str) -> list:
        return ["finetune", "--model", "toy-m1", "--examples", examples, "--labels", labels / "behavior.jsonl",
                "--splits", "test", "--steps", "4", "--save-every", "2", "--batch-size", "8", "--out", out, "--no-progress", *extra]

    ref, out = tmp_path / "ref", tmp_path / "out"
    assert run_cli(capsys, *finetune(ref))[0] == 0
    code, lines = run_cli(capsys, *finetune(out), fault="write@3:enospc", monkeypatch=monkeypatch)
    assert code == 2 and len(lines) == 1 and "No space left on device" in lines[0], lines
    assert not (out / "finetune.json").exists()
    assert run_cli(capsys, *finetune(out, "--resume"))[0] == 0
    assert (out / "adapter_model.safetensors").read_bytes() == (ref / "adapter_model.safetensors").read_bytes()


def test_ctrl_c_in_a_command_is_one_line_130_and_resumes(tmp_path, examples, capsys, monkeypatch):
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert run_cli(capsys, *collect_args(examples, ref))[0] == 0
    code, lines = run_cli(capsys, *collect_args(examples, out), fault="write@2:interrupt", monkeypatch=monkeypatch)
    assert code == 130 and lines == [f"selfsim collect: {interrupt.MESSAGE}"]
    assert run_cli(capsys, *collect_args(examples, out))[0] == 0
    assert (out / "behavior.jsonl").read_bytes() == (ref / "behavior.jsonl").read_bytes()


def test_a_ctrl_c_a_library_swallows_still_stops_the_command(monkeypatch, capsys):
    import selfsim.commands.info as info

    def swallowing(args) -> int:
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass  # what a careless `except BaseException` in a library does
        return 0

    monkeypatch.setattr(info, "run", swallowing)
    code, lines = run_cli(capsys, "info", "--model", "toy-m1")
    assert code == 130 and lines == [f"selfsim info: {interrupt.MESSAGE}"]


def test_a_ctrl_c_that_lands_in_a_finalizer_is_raised_again():
    class Bar:
        def __del__(self):  # a progress bar's cleanup, interrupted
            signal.raise_signal(signal.SIGINT)

    with interrupt.handled() as state:
        with pytest.raises(KeyboardInterrupt):
            Bar()  # noqa: B018 - dropped at once: its finalizer runs here
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                time.sleep(0.01)
        assert state.interrupted


def test_a_50_mb_prompt_line_is_refused_at_read_time(tmp_path, capsys):
    path = tmp_path / "huge.jsonl"
    example = generate("animals_long", "first_word", n=1, seed=0, dialect="toy")[0].to_dict()
    example["object_messages"][0]["content"] = "fox " * (50 * 2**20 // 4)
    path.write_text(json.dumps(example) + "\n")
    start = time.perf_counter()
    code, lines = run_cli(capsys, "collect", "--model", "toy-m1", "--examples", path, "--out", tmp_path / "out", "--no-progress")
    assert code == 2 and len(lines) == 1 and "huge.jsonl:1: line of 50.0 MiB" in lines[0], lines
    assert time.perf_counter() - start < 20  # refused at read time, not after tokenizing 50 MB (50 s before)
    assert not (tmp_path / "out").exists()


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    except OSError:
        return False
    return done.returncode == 0


def _resize(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True, capture_output=True)


def test_a_real_full_disk_is_one_line_and_resumes(tmp_path, examples, capsys):
    """A tmpfs too small for the output; skipped where mounting is not allowed (CI without privileges)."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "64k"):
        pytest.skip("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)")
    try:
        ref = tmp_path / "ref"
        assert run_cli(capsys, *collect_args(examples, ref))[0] == 0
        code, lines = run_cli(capsys, "data", "generate", "--task", "animals_long", "--n", "400", "--out", disk / "ex.jsonl")
        assert code == 2 and len(lines) == 1 and "No space left on device" in lines[0], lines
        assert list(disk.iterdir()) == []  # no partial file, no temporary
        (disk / "filler").write_bytes(b"\0" * (64 * 1024 - 4096 * 2))  # leave about two pages
        out = disk / "out"
        code, lines = run_cli(capsys, *collect_args(examples, out))
        assert code == 2 and len(lines) == 1 and "No space left on device" in lines[0], lines
        (disk / "filler").unlink()
        _resize(disk, "4m")
        assert run_cli(capsys, *collect_args(examples, out))[0] == 0
        assert (out / "behavior.jsonl").read_bytes() == (ref / "behavior.jsonl").read_bytes()
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


# The study under a full disk and under Ctrl-C at a random time: a study made small by a wrapper (each
# stage runs, on 8 prompts), compared file by file with an uninterrupted run in the same directory.
TINY_STUDY = """
import dataclasses, sys
from selfsim.study import Study
SMALL = dict(n_train=8, n_eval=4, scaling=(4,), full_control=(4,), calibration_prompts=2, calibration_samples=2,
             epochs=1.0, batch_size=8, n_boot=10, interp_prompts=4, properties=("first_word",),
             train_tasks=("colors_long",), test_tasks=("animals_long",))
_init = Study.__init__
Study.__init__ = lambda self, config, *a, **k: _init(self, dataclasses.replace(config, **SMALL), *a, **k)
from selfsim.cli import main
sys.exit(main(["study", "--quick", "--out", sys.argv[1]]))
"""
UNSTABLE = {"manifest.json"}  # stage timings; plotly HTML carries random element ids


def _study(script: Path, out: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(script), str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**os.environ, **QUIET, **(env or {})})


def _snapshot(run: Path) -> dict[str, bytes]:
    files = {}
    for p in sorted(run.rglob("*")):
        if not p.is_file() or p.name in UNSTABLE or p.suffix == ".html":
            continue
        data = p.read_bytes()
        if p.name == "finetune.json":
            record = json.loads(data)
            record.pop("seconds", None)
            data = json.dumps(record, sort_keys=True).encode()
        files[str(p.relative_to(run))] = data
    return files


def _ends_in_one_line(stderr: str, code: int, expected: int, needle: str) -> None:
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert code == expected, stderr[-2000:]
    assert needle in lines[-1], lines[-3:]
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-2000:]


@pytest.mark.slow
def test_study_under_ctrl_c_and_a_full_disk_resumes_to_the_same_bytes(tmp_path):
    script = tmp_path / "tiny_study.py"
    script.write_text(TINY_STUDY)
    run, ref = tmp_path / "run", tmp_path / "ref"
    start = time.perf_counter()
    proc = _study(script, run)
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-2000:]
    took = time.perf_counter() - start
    expected = _snapshot(run)
    run.rename(ref)

    delay = random.Random(int(os.environ.get("SELFSIM_TEST_SEED", "0"))).uniform(3.0, max(4.0, 0.6 * took))
    proc = _study(script, run)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    _ends_in_one_line(err, proc.returncode, 130, interrupt.MESSAGE)  # sent well before a fresh run can end

    proc = _study(script, run, env={"SELFSIM_FAULT": "write@3:enospc"})  # the third write after resuming
    _, err = proc.communicate(timeout=400)
    _ends_in_one_line(err, proc.returncode, 2, "No space left on device (ENOSPC)")

    proc = _study(script, run)
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-2000:]
    got = _snapshot(run)
    assert sorted(got) == sorted(expected)
    assert [name for name in expected if got[name] != expected[name]] == []
