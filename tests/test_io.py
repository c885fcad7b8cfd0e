import pytest

from selfsim.errors import SelfsimError
from selfsim.io import append_jsonl, atomic_dir, atomic_open, iter_jsonl, read_jsonl, write_jsonl


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2\n[1, 2]\n')
    with pytest.raises(SelfsimError, match=rf"{path}:3: malformed JSONL line"):
        read_jsonl(path)
    assert read_jsonl(path, skip_bad=True) == [{"a": 1}]
    path.write_bytes(b'{"a": 1}\n{"b": "\xff"}\n')
    with pytest.raises(SelfsimError, match=rf"{path}:2: not UTF-8 text"):
        read_jsonl(path)


def test_torn_tail_is_tolerated_only_when_asked(tmp_path):
    path = tmp_path / "cache.jsonl"
    append_jsonl(path, [{"i": 0}, {"i": 1}])
    with open(path, "a") as fh:
        fh.write('{"i": 2, "par')
    assert [r["i"] for _, r in iter_jsonl(path, tolerate_torn_tail=True)] == [0, 1]
    with pytest.raises(SelfsimError, match=":3: malformed"):
        read_jsonl(path)


def test_atomic_writes_leave_nothing_on_error(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [{"x": 1}])
    with pytest.raises(RuntimeError):
        with atomic_open(path) as fh:
            fh.write("partial")
            raise RuntimeError("stop")
    assert read_jsonl(path) == [{"x": 1}]
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "model") as d:
            (d / "w").write_text("half")
            raise RuntimeError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
    with atomic_dir(tmp_path / "model") as d:
        (d / "w").write_text("whole")
    assert (tmp_path / "model" / "w").read_text() == "whole"


_KILLED_WRITER = """
import os, sys
from selfsim.io import atomic_dir, atomic_open
with atomic_open(sys.argv[1] + "/behavior.jsonl") as fh:
    fh.write("half")
    fh.flush()
    with atomic_dir(sys.argv[1] + "/merged"):
        os._exit(137)
"""


def _killed_writer_leftovers(directory):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(directory)], check=False)
    assert proc.returncode == 137
    return sorted(p.name for p in directory.iterdir())


def test_clean_orphans_removes_what_killed_writers_left(tmp_path):
    from selfsim.io import clean_orphans

    left = _killed_writer_leftovers(tmp_path)
    assert len(left) == 2 and left[0].startswith(".behavior.jsonl.") and left[1].startswith(".merged.")
    assert all(name.endswith(".tmp") for name in left)
    (tmp_path / "behavior.jsonl").write_text("kept\n")
    (tmp_path / ".gitignore").write_text("*\n")
    (tmp_path / ".shard-00001.safetensors.tmp").write_text("not ours to judge by name\n")
    removed = clean_orphans(tmp_path)
    assert sorted(p.name for p in removed) == left
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore", ".shard-00001.safetensors.tmp", "behavior.jsonl"]
    assert clean_orphans(tmp_path / "missing") == []


def test_clean_orphans_keeps_writes_in_progress(tmp_path):
    import os

    from selfsim.io import _HOST, clean_orphans

    with atomic_open(tmp_path / "live.json") as fh:
        fh.write("{}")
        other_host = tmp_path / f".x.json.1-{'0' if _HOST[0] != '0' else '1'}{_HOST[1:]}.abcdefgh.tmp"
        other_host.write_text("")
        assert clean_orphans(tmp_path) == []
        assert len(list(tmp_path.iterdir())) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["live.json", other_host.name])
    legacy_old = tmp_path / ".manifest.json.k3j4h5g6.tmp"
    legacy_new = tmp_path / ".behavior.jsonl.a1b2c3d4.tmp"
    legacy_old.write_text("")
    legacy_new.write_text("")
    os.utime(legacy_old, (1_000_000, 1_000_000))
    os.utime(legacy_new, (4_000_000_000, 4_000_000_000))
    assert clean_orphans(tmp_path) == [legacy_old]


def test_fault_point_exits_like_a_kill(tmp_path):
    import os
    import subprocess
    import sys

    code = "from selfsim.io import fault_point; fault_point('a'); fault_point('b'); print('survived')"
    env = {**os.environ, "SELFSIM_FAULT": "b"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout) == (137, "")
    env["SELFSIM_FAULT"] = "c"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout) == (0, "survived\n")


def test_stabilize_safetensors_sorts_the_metadata_in_place(tmp_path):
    import json

    import torch
    from safetensors.torch import load_file, save_file

    from selfsim.io import stabilize_safetensors

    path = tmp_path / "x.safetensors"
    save_file({"b": torch.arange(3.0), "a": torch.ones(2, 2)}, str(path), metadata={"rows": "0-3", "format": "f", "m": "x"})
    size = path.stat().st_size
    n = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8 : 8 + n])
    header["__metadata__"] = dict(reversed(sorted(header["__metadata__"].items())))
    raw = json.dumps(header, separators=(",", ":")).encode()
    path.write_bytes(n.to_bytes(8, "little") + raw + b" " * (n - len(raw)) + path.read_bytes()[8 + n :])
    stabilize_safetensors(path)
    data = path.read_bytes()
    assert path.stat().st_size == size
    assert list(json.loads(data[8 : 8 + n])["__metadata__"]) == ["format", "m", "rows"]
    tensors = load_file(str(path))
    assert torch.equal(tensors["b"], torch.arange(3.0)) and torch.equal(tensors["a"], torch.ones(2, 2))


# Issue 18: full-disk and Ctrl-C fault points, appends cut back on failure, over-long rows.


@pytest.fixture
def fault(monkeypatch):
    """Set SELFSIM_FAULT for this test with fresh hit counts."""
    import selfsim.io as io

    monkeypatch.setattr(io, "_FAULT_HITS", {})

    def set_fault(value: str) -> None:
        monkeypatch.setenv("SELFSIM_FAULT", value)

    return set_fault


def test_enospc_in_an_append_leaves_the_rows_already_written(tmp_path, fault):
    import errno

    path = tmp_path / "cache.jsonl"
    append_jsonl(path, [{"i": 0}, {"i": 1}])
    before = path.read_bytes()
    fault("write@1:enospc")
    with pytest.raises(OSError) as info:
        append_jsonl(path, [{"i": 2}, {"i": 3}])
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert path.read_bytes() == before
    append_jsonl(path, [{"i": 2}])  # the fault fired once: the next append works
    assert [r["i"] for r in read_jsonl(path)] == [0, 1, 2]


def test_enospc_in_an_atomic_write_keeps_the_old_file_and_names_it(tmp_path, fault):
    path = tmp_path / "out.json"
    path.write_text("old")
    fault("write@1:enospc")
    with pytest.raises(OSError) as info:
        with atomic_open(path) as fh:
            fh.write("new")
    assert info.value.filename == str(path)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_library_write_error_is_named_after_the_file(tmp_path):
    import errno

    path = tmp_path / "table.parquet"
    with pytest.raises(OSError) as info:
        with atomic_open(path, "wb"):
            raise OSError(errno.ENOSPC, "No space left on device")  # as pyarrow raises it, without a path
    assert info.value.filename == str(path)


def test_interrupt_fault_sends_a_real_sigint(fault):
    fault("here@2:interrupt")
    from selfsim.io import fault_point

    fault_point("here")
    with pytest.raises(KeyboardInterrupt):
        fault_point("here")


def test_unknown_fault_action_is_one_line(fault):
    fault("here:explode")
    from selfsim.io import fault_point

    with pytest.raises(SelfsimError, match="unknown action 'explode'"):
        fault_point("here")


def test_an_overlong_row_is_refused_without_reading_it_whole(tmp_path):
    path = tmp_path / "ex.jsonl"
    with open(path, "w") as fh:
        fh.write('{"a": 1}\n')
        fh.write('{"prompt": "' + "x" * (3 * 2**20) + '"}\n')
        fh.write('{"a": 3}\n')
    with pytest.raises(SelfsimError, match=r"ex.jsonl:2: line of 3\.0 MiB, over the 1 MiB a row may hold"):
        read_jsonl(path)
    assert [n for n, _ in iter_jsonl(path, skip_bad=True)] == [1, 3]
    assert [n for n, _ in iter_jsonl(path, max_line_bytes=4 * 2**20)] == [1, 2, 3]


def test_a_row_of_exactly_the_limit_is_read(tmp_path):
    import json

    row = {"p": "y" * 100}
    path = tmp_path / "ok.jsonl"
    path.write_text(json.dumps(row) + "\n")
    size = len(json.dumps(row))
    assert read_jsonl(path, max_line_bytes=size) == [row]
    with pytest.raises(SelfsimError, match="over the"):
        read_jsonl(path, max_line_bytes=size - 1)
