"""A subject's object-level behaviour M(P) and hypothetical answers to H(P, f), cached and resumable.

`collect` answers each distinct object prompt once (examples are grouped by `Example.object_id`) and
reads every property the examples ask about that prompt off the same response; `predict` answers each
hypothetical prompt and scores the meta answer. Both run one engine (`selfsim.generation`): a greedy
row per prompt (sample -1, temperature 0) and, with `samples=N`, N rows sampled at `temperature`.

The cache. Every finished generation is appended, a whole batch per write with fsync, to
`out_dir/cache/<fingerprint>.jsonl`, where the fingerprint hashes the subject's weights, adapter config,
dtype and chat template with the decoding settings (temperature, seed when sampling) and the token
budget. A killed run leaves at most a torn last line, which the next run cuts off; it then generates
only what the cache lacks. The sample index is part of each row's key and sample i's random draws depend
only on (seed, prompt, i), so raising N later reuses the first samples. The final table is written
atomically from the cache in example order: `behavior.jsonl` / `predictions.jsonl` and a parquet copy.

Setting the environment variable SELFSIM_BATCH_SLEEP (seconds) sleeps after each cached batch, so a
test can interrupt a run part-way deterministically.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from selfsim.errors import SelfsimError
from selfsim.examples import Example, Messages, prompt_id
from selfsim.generation import GREEDY, GenerationConfig, Request, encode_prompt, generate_batch
from selfsim.io import append_jsonl, atomic_open, clean_orphans, iter_jsonl, write_jsonl
from selfsim.tasks import token_budget

if TYPE_CHECKING:
    from selfsim.models import Subject

BEHAVIOR_FILE = "behavior.jsonl"
PREDICTIONS_FILE = "predictions.jsonl"
CACHE_DIR = "cache"
SLEEP_ENV = "SELFSIM_BATCH_SLEEP"
_RUN_COLUMNS = ["sample", "temperature", "response", "clean"]
_TAIL_COLUMNS = ["finish", "truncated", "fingerprint", "model"]
BEHAVIOR_COLUMNS = ["object_id", "task", *_RUN_COLUMNS, "properties", "compliant", *_TAIL_COLUMNS]
PREDICTION_COLUMNS = ["example_id", "object_id", "task", "property", *_RUN_COLUMNS, "answer", "compliant", *_TAIL_COLUMNS]
LONG_BEHAVIOR_COLUMNS = ["object_id", "task", "property", "value", "compliant", "sample", "response"]
LONG_PREDICTION_COLUMNS = ["object_id", "task", "property", "answer", "compliant", "sample", "response"]


class TruncationWarning(UserWarning):
    """Some prompts were longer than the model's context and lost their beginning."""


@dataclass
class _Prompt:
    """A distinct prompt to answer, with the examples that ask about it."""

    key: str
    messages: Messages
    task: str
    budget: int
    examples: list[Example] = field(default_factory=list)


def check_examples(examples: Iterable[Example]) -> list[Example]:
    """The examples as a list; raise before any model work if there are none or a property is unknown."""
    examples = list(examples)
    if not examples:
        raise SelfsimError("no examples given: nothing to generate")
    _properties(examples)
    return examples


def collect(
    subject: Subject,
    examples: Iterable[Example],
    *,
    out_dir: str | Path,
    samples: int = 0,
    temperature: float = 1.0,
    batch_size: int = 16,
    max_new_tokens: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Object-level behaviour, one row per (object prompt, sample); writes out_dir/behavior.jsonl."""
    config = GenerationConfig(samples, temperature, max_new_tokens, seed, batch_size).check()
    examples, prompts, results = _generate(subject, examples, Path(out_dir), config, meta=False, progress=progress)
    props = _properties(examples)
    rows = []
    for prompt in prompts:
        asked = {e.property: e for e in prompt.examples}
        for sample in _sample_indices(config):
            done = results[(prompt.key, sample)]
            response = done["response"]
            compliant = {p: bool(props[p].object_compliant(response, e)) for p, e in asked.items()}
            values = {p: props[p].extract(response, e) if compliant[p] else None for p, e in asked.items()}
            rows.append({
                "object_id": prompt.key,
                "task": prompt.task,
                **_common(subject, done, sample),
                "properties": values,
                "compliant": compliant,
            })
    return _write_table(Path(out_dir) / BEHAVIOR_FILE, rows, BEHAVIOR_COLUMNS)


def predict(
    subject: Subject,
    examples: Iterable[Example],
    *,
    out_dir: str | Path,
    samples: int = 0,
    temperature: float = 1.0,
    batch_size: int = 16,
    max_new_tokens: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Answers to the hypothetical prompts, one row per (example, sample); writes out_dir/predictions.jsonl."""
    config = GenerationConfig(samples, temperature, max_new_tokens, seed, batch_size).check()
    examples, _, results = _generate(subject, examples, Path(out_dir), config, meta=True, progress=progress)
    props = _properties(examples)
    rows = []
    for example in examples:
        key = prompt_id(example.hypothetical_messages)
        for sample in _sample_indices(config):
            done = results[(key, sample)]
            prop = props[example.property]
            compliant = bool(prop.meta_compliant(done["response"]))
            rows.append({
                "example_id": example.id,
                "object_id": example.object_id,
                "task": example.task,
                "property": example.property,
                **_common(subject, done, sample),
                "answer": prop.meta_value(done["response"]) if compliant else None,
                "compliant": compliant,
            })
    return _write_table(Path(out_dir) / PREDICTIONS_FILE, rows, PREDICTION_COLUMNS)


def _generate(subject: Subject, examples: Iterable[Example], out_dir: Path, config: GenerationConfig, *, meta: bool,
              progress: bool) -> tuple[list[Example], list[_Prompt], dict[tuple[str, int], dict[str, Any]]]:
    """The one generation path of `collect` (object prompts) and `predict` (`meta`: hypothetical prompts): check the
    examples, group them by distinct prompt with its answer budget, then generate through the resumable cache."""
    examples = check_examples(examples)
    prompts = _prompts(examples, (lambda e: e.hypothetical_messages) if meta else (lambda e: e.object_messages),
                       lambda e: token_budget(e.task, e.dialect, config.max_new_tokens, meta=meta))
    _clean_orphans(out_dir)
    results = _generate_cached(subject, prompts, config, out_dir / CACHE_DIR, progress, "predict" if meta else "collect")
    return examples, prompts, results


Labels = dict[str, dict[str, str | None]]


@dataclass(frozen=True)
class BehaviorTable:
    """A behavior (`collect`) or predictions (`predict`) table, one row per (prompt, sample), and its views.

    `source` names where it was read from and `lines` the JSONL line of each row (for error messages).
    """

    df: pd.DataFrame
    source: str = "behavior table"
    lines: tuple[int, ...] | None = field(default=None, repr=False)

    @classmethod
    def load(cls, path: str | Path, *, strict: bool = True) -> BehaviorTable:
        """Read a table written by `collect` / `predict` (.jsonl or .parquet).

        `strict=False` reads any rows with an `object_id` (as `labels` takes them) and keeps every column.
        """
        path = Path(path)
        lines = None
        if path.suffix != ".parquet":
            numbered = list(iter_jsonl(path))
            lines = tuple(n for n, _ in numbered)
            df = pd.DataFrame.from_records([row for _, row in numbered])
        elif path.is_file():
            df = pd.read_parquet(path)
            for col in ("properties", "compliant"):
                if col in df.columns:
                    df[col] = [json.loads(v) if isinstance(v, str) else v for v in df[col]]
        else:
            raise SelfsimError(f"{path}: no such file")
        if not strict:
            if "object_id" not in df.columns:
                raise SelfsimError(f"{path}: not a behaviour table (no object_id column)")
            return cls(df, str(path), lines)
        columns = PREDICTION_COLUMNS if "example_id" in df.columns else BEHAVIOR_COLUMNS
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise SelfsimError(f"{path}: not a behaviour or predictions table (missing column(s) {missing})")
        return cls(df[columns], str(path), lines)

    def greedy(self) -> pd.DataFrame:
        """The greedy rows (sample -1; a row without a sample counts as greedy)."""
        if "sample" not in self.df.columns:
            return self.df
        return self.df[self.df["sample"].isna() | (self.df["sample"] == GREEDY)]

    def samples(self) -> pd.DataFrame:
        """The sampled rows (sample >= 0)."""
        return self.df[self.df["sample"] >= 0]

    def long(self, *, samples: bool = False) -> pd.DataFrame:
        """One row per (prompt, property) in the format `selfsim.evaluate` takes: greedy rows, or samples.

        A behavior table gives object_id, task, property, value, compliant, sample, response; a
        predictions table gives object_id, task, property, answer, compliant, sample, response.
        """
        if "sample" not in self.df.columns:
            raise SelfsimError(f"{self.source}: not a behaviour or predictions table (columns {list(self.df.columns)})")
        df = self.samples() if samples else self.greedy()
        if "answer" in df.columns:
            return df[LONG_PREDICTION_COLUMNS].reset_index(drop=True)
        if "properties" not in df.columns:
            raise SelfsimError(f"{self.source}: not a behaviour or predictions table (columns {list(df.columns)})")
        records = [
            {
                "object_id": row["object_id"],
                "task": row["task"],
                "property": name,
                "value": value,
                "compliant": bool(row["compliant"][name]),
                "sample": int(row["sample"]),
                "response": row["response"],
            }
            for row in df.to_dict("records")
            for name, value in row["properties"].items()
        ]
        return pd.DataFrame.from_records(records, columns=LONG_BEHAVIOR_COLUMNS)

    def labels(self) -> Labels:
        """Greedy property values per object prompt, {object_id: {property: value or None}}.

        Rows hold a `properties` {property: value} mapping or a long-form `property` / `value`
        (/ `compliant`) triple; two different values for one (object, property) raise.
        """
        labels: Labels = {}
        for index, row in self.greedy().iterrows():
            where = f"{self.source}:{self.lines[cast(int, index)]}" if self.lines else f"{self.source} row {index}"
            object_id = row.get("object_id")
            if not isinstance(object_id, str):
                raise SelfsimError(f"{where}: behaviour row has no object_id")
            if isinstance(row.get("properties"), dict):
                values = row["properties"]
            elif isinstance(row.get("property"), str):
                compliant = row.get("compliant")
                values = {row["property"]: None if compliant is False else row.get("value")}
            else:
                raise SelfsimError(
                    f"{where}: behaviour row has neither `properties` {{property: value}} nor `property` and `value`"
                )
            slot = labels.setdefault(object_id, {})
            for prop, value in values.items():
                value = None if value is None or value == "" or (isinstance(value, float) and math.isnan(value)) else str(value)
                if prop in slot and slot[prop] != value:
                    raise SelfsimError(
                        f"{where}: conflicting labels for object {object_id} property {prop}: "
                        f"{slot[prop]!r} vs {value!r}; a behaviour table must hold one model's greedy answers"
                    )
                slot[prop] = value
        if not labels:
            raise SelfsimError(f"{self.source}: no greedy (sample == -1) behaviour rows")
        return labels

    def responses(self) -> dict[str, str]:
        """The greedy response of each object prompt, {object_id: response}."""
        greedy = self.greedy()
        if not {"object_id", "response"} <= set(greedy.columns):
            raise SelfsimError(f"{self.source} is not a behaviour table: it needs object_id and response columns")
        return dict(zip(greedy["object_id"], greedy["response"]))


def adapter_digest(adapter_dir: str | Path | None) -> str | None:
    """SHA-256 of an adapter's content: its config as canonical JSON (lists of module names sorted) and its tensors.

    Two adapters with the same settings and weights get the same digest, however their files order keys.
    """
    if adapter_dir is None:
        return None
    adapter_dir = Path(adapter_dir)
    h = hashlib.sha256()
    config_file = adapter_dir / "adapter_config.json"
    if config_file.is_file():
        from selfsim.io import read_json

        h.update(json.dumps(canonical_adapter_config(read_json(config_file)), sort_keys=True).encode())
    for tensors in sorted(adapter_dir.glob("adapter_model*.safetensors")):
        with open(tensors, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(n))
            base = 8 + n
            for name in sorted(k for k in header if k != "__metadata__"):
                info = header[name]
                begin, end = info["data_offsets"]
                fh.seek(base + begin)
                h.update(json.dumps([name, info["dtype"], info["shape"]]).encode())
                h.update(fh.read(end - begin))
    return h.hexdigest()


def canonical_adapter_config(config: Any) -> Any:
    """A peft adapter config with `target_modules` (and other module-name lists) sorted."""
    if not isinstance(config, dict):
        return config
    out = dict(config)
    for key in ("target_modules", "modules_to_save", "exclude_modules"):
        if isinstance(out.get(key), list) and all(isinstance(v, str) for v in out[key]):
            out[key] = sorted(out[key])
    return out


def fingerprint(subject: Subject, temperature: float, seed: int, max_new_tokens: int) -> str:
    """16-hex id of (weights, adapter content, dtype, chat template) x (decoding settings, budget)."""
    blob = {
        "weights": subject.fingerprint,
        "adapter": adapter_digest(subject.adapter) if subject.adapter else None,
        "dtype": subject.options.get("dtype"),
        "chat_template": hashlib.sha256(str(getattr(subject.tokenizer, "chat_template", "")).encode()).hexdigest(),
        "temperature": float(temperature),
        "seed": seed if temperature > 0 else None,
        "max_new_tokens": max_new_tokens,
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- the engine

def _clean_orphans(out_dir: Path) -> None:
    """Drop the temporaries of killed writes in the output and cache folders."""
    clean_orphans(out_dir)
    clean_orphans(out_dir / CACHE_DIR)


def _generate_cached(
    subject: Subject, prompts: list[_Prompt], config: GenerationConfig, cache_dir: Path, progress: bool, desc: str
) -> dict[tuple[str, int], dict[str, Any]]:
    """Every (prompt, sample) generation, from the cache where present, else generated and appended."""
    from tqdm.auto import tqdm

    caches: dict[str, _Cache] = {}
    fingerprints: dict[tuple[float, int], str] = {}
    results: dict[tuple[str, int], dict[str, Any]] = {}
    todo: list[tuple[_Prompt, int, str, float]] = []
    for prompt in prompts:
        for sample in _sample_indices(config):
            temperature = 0.0 if sample == GREEDY else config.temperature
            settings = (temperature, prompt.budget)
            if settings not in fingerprints:
                fp = fingerprints[settings] = fingerprint(subject, temperature, config.seed, prompt.budget)
                caches[fp] = _Cache(cache_dir / f"{fp}.jsonl")
            fp = fingerprints[settings]
            hit = caches[fp].rows.get((prompt.key, sample))
            if hit is not None:
                results[(prompt.key, sample)] = {**hit, "fingerprint": fp, "temperature": temperature}
            else:
                todo.append((prompt, sample, fp, temperature))

    requests, truncated = [], 0
    encoded: dict[tuple[str, int], tuple[tuple[int, ...], bool]] = {}
    for prompt, sample, fp, temperature in todo:
        if (prompt.key, prompt.budget) not in encoded:
            encoded[(prompt.key, prompt.budget)] = encode_prompt(subject, subject.render_chat(prompt.messages), prompt.budget)
            truncated += encoded[(prompt.key, prompt.budget)][1]
        ids, cut = encoded[(prompt.key, prompt.budget)]
        requests.append((fp, Request(prompt.key, ids, sample, prompt.budget, temperature, config.seed), cut))
    if truncated:
        warnings.warn(
            f"{truncated} prompt(s) were longer than {subject.name}'s context minus max_new_tokens and were cut from the left",
            TruncationWarning,
            stacklevel=3,
        )
    # Group by cache file, then longest prompts first (little padding; memory errors surface early).
    requests.sort(key=lambda r: (r[0], -len(r[1].ids), r[1].key, r[1].sample))
    delay = float(os.environ.get(SLEEP_ENV, "0") or 0)
    with tqdm(total=len(results) + len(requests), initial=len(results), unit="row", desc=desc, disable=not progress) as bar:
        for start in range(0, len(requests), config.batch_size):
            batch = requests[start : start + config.batch_size]
            groups: dict[str, list[tuple[Request, bool]]] = {}
            for fp, req, cut in batch:
                groups.setdefault(fp, []).append((req, cut))
            for fp, group in groups.items():
                made = generate_batch(subject, [req for req, _ in group])
                rows = [
                    {"key": req.key, "sample": req.sample, "response": g.response, "n_tokens": len(g.tokens),
                     "finish": g.finish, "truncated": cut}
                    for (req, cut), g in zip(group, made)
                ]
                caches[fp].append(rows)
                for (req, _), row in zip(group, rows):
                    results[(req.key, req.sample)] = {**row, "fingerprint": fp, "temperature": req.temperature}
            bar.update(len(batch))
            if delay:
                time.sleep(delay)
    return results


class _Cache:
    """Finished generations of one fingerprint: an append-only JSONL file keyed by (prompt key, sample)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[tuple[str, int], dict[str, Any]] = {}
        if path.is_file():
            _cut_torn_tail(path)
            for lineno, row in iter_jsonl(path):
                if not isinstance(row.get("key"), str) or not _is_index(row.get("sample")):
                    raise SelfsimError(
                        f"{path}:{lineno}: not a generation-cache row (it needs a string key and an integer sample); "
                        "delete the file to regenerate it"
                    )
                self.rows.setdefault((row["key"], int(row["sample"])), row)

    def append(self, rows: list[dict[str, Any]]) -> None:
        append_jsonl(self.path, rows)
        for row in rows:
            self.rows.setdefault((row["key"], row["sample"]), row)


def check_cache(out_dir: str | Path) -> None:
    """Read every generation cache of a collect/predict output directory, so a malformed row fails before the model loads."""
    for path in sorted((Path(out_dir) / CACHE_DIR).glob("*.jsonl")):
        _Cache(path)


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _cut_torn_tail(path: Path) -> None:
    """Drop an unterminated last line (an append cut short by a kill) so new appends start clean."""
    with open(path, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        fh.seek(0)
        data = fh.read()
        fh.truncate(data.rfind(b"\n") + 1)
        fh.flush()
        os.fsync(fh.fileno())


# ----------------------------------------------------------------------------- tables

def _properties(examples: list[Example]) -> dict[str, Any]:
    """The Property of every name the examples use (an unknown name raises before any model work)."""
    from selfsim import properties

    return {name: properties.get(name) for name in dict.fromkeys(e.property for e in examples)}


def _prompts(examples: list[Example], messages: Callable[[Example], Messages], budget: Callable[[Example], int]) -> list[_Prompt]:
    """Distinct prompts in order of first appearance, each with the examples that ask about it."""
    prompts: dict[str, _Prompt] = {}
    for e in examples:
        msgs = messages(e)
        key = prompt_id(msgs)
        if key not in prompts:
            prompts[key] = _Prompt(key, msgs, e.task, budget(e))
        prompts[key].examples.append(e)
    return list(prompts.values())


def _sample_indices(config: GenerationConfig) -> list[int]:
    return [GREEDY, *range(config.samples)]


def _common(subject: Subject, done: dict[str, Any], sample: int) -> dict[str, Any]:
    from selfsim.properties import clean

    return {
        "sample": sample,
        "temperature": done["temperature"],
        "response": done["response"],
        "clean": clean(done["response"]),
        "finish": done["finish"],
        "truncated": bool(done["truncated"]),
        "fingerprint": done["fingerprint"],
        "model": subject.name,
    }


def _write_table(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """Write rows as JSONL and a parquet copy beside it, each atomically; return them as a DataFrame."""
    write_jsonl(path, rows)
    df = pd.DataFrame.from_records(rows, columns=columns)
    flat = df.copy()
    for col in ("properties", "compliant"):
        if col in flat.columns and flat[col].map(lambda v: isinstance(v, dict)).all():
            flat[col] = [json.dumps(v, sort_keys=True) for v in flat[col]]
    with atomic_open(path.with_suffix(".parquet"), "wb") as fh:
        flat.to_parquet(fh, index=False)
    return df
