"""Metrics of self-prediction: hypothetical accuracy, mode baseline, bootstrap CIs, calibration, shift.

Everything here is a pure function of pandas DataFrames in long format, one row per
(object prompt, property); no model code, no I/O, every random draw seeded, nothing rounded.

- behaviour (a model's object-level answers M(P) at temperature 0): `object_id`, `task`, `property`,
  `value` (f(M(P)), None when non-compliant), `compliant` (bool); optionally `response`.
  One row per (object_id, property): T=1 samples go to `calibration`, not here.
- predictions (a model's answers to H(P, f)): `object_id`, `task`, `property`, `answer` (the cleaned
  meta answer, None when non-compliant), `compliant` (bool).

Non-compliance is handled in one of two declared ways, recorded in every result's `noncompliant`
column (SPEC asks for both):
- "wrong": every row counts; a row is correct only when the hypothetical answer and the object-level
  answer are both compliant and equal. A non-compliant meta answer is wrong, and so is any answer to a
  prompt whose object-level answer was non-compliant (there is no f(M(P)) to match).
- "exclude": rows where either answer is non-compliant are dropped before averaging.

Tables group by (task, property) and add micro-averaged rows: task="ALL" for each property
(pooling all tasks) and task="ALL", property="ALL" (pooling everything). `to_records` turns any
result table into JSON-ready dicts (NaN -> None).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from selfsim.errors import SelfsimError

ALL = "ALL"
NONCOMPLIANT_MODES = ("wrong", "exclude")
Noncompliant = Literal["wrong", "exclude"]
BEHAVIOR_COLUMNS = ("object_id", "task", "property", "value", "compliant")
PREDICTION_COLUMNS = ("object_id", "task", "property", "answer", "compliant")
SCORED_COLUMNS = ("task", "property", "correct", "meta_compliant", "object_compliant")
SAMPLE_COLUMNS = ("object_id", "value")
_KEY = ["object_id", "property"]
# Bootstrap resamples are drawn in chunks of at most this many indices to bound memory; the
# chunks consume the generator in the same order as one (n_boot, n) draw, so results are identical.
_BOOT_CHUNK_ELEMENTS = 4_000_000


# ----------------------------------------------------------------------------- validation

def require_columns(df: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    """Raise a SelfsimError naming any missing column and the expected ones."""
    if not isinstance(df, pd.DataFrame):
        raise SelfsimError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SelfsimError(
            f"{name} table is missing column(s) {missing}; expected columns {list(columns)} "
            f"(it has {list(df.columns)})"
        )
    for col in ("object_id", "task", "property"):
        if col in columns and df[col].isna().any():
            raise SelfsimError(f"{name}.{col} has {int(df[col].isna().sum())} missing value(s); every row needs one")


def _bools(df: pd.DataFrame, col: str, name: str) -> pd.Series:
    """Column `col` as a bool Series; missing or non-boolean entries raise."""
    s = df[col]
    bad = s.isna() | ~s.isin([True, False])
    if bad.any():
        raise SelfsimError(
            f"{name}.{col} must be True/False on every row; {int(bad.sum())} row(s) are not, e.g. {s[bad].iloc[0]!r}"
        )
    return s.astype(bool)


def _unique_keys(df: pd.DataFrame, name: str) -> None:
    """Raise unless `df` has one row per (object_id, property)."""
    dup = df.duplicated(_KEY, keep=False)
    if dup.any():
        example = tuple(df.loc[dup, _KEY].iloc[0])
        raise SelfsimError(
            f"{name} has {int(dup.sum())} rows sharing an (object_id, property) key, e.g. {example}; "
            "pass the temperature-0 table with one row per object prompt and property "
            "(T=1 samples belong to `calibration`)"
        )


def _check_mode(noncompliant: str) -> None:
    if noncompliant not in NONCOMPLIANT_MODES:
        raise SelfsimError(f"noncompliant must be one of {list(NONCOMPLIANT_MODES)}, got {noncompliant!r}")


# ----------------------------------------------------------------------------- accuracy

def bootstrap_ci(correct: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `correct`: resample n with replacement `n_boot` times.

    Draws `np.random.default_rng(seed).integers(0, n, size=(n_boot, n))`; (nan, nan) when empty.
    """
    if n_boot < 1:
        raise SelfsimError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < level < 1:
        raise SelfsimError(f"level must lie strictly between 0 and 1, got {level}")
    x = np.asarray(correct, dtype=float).ravel()
    if x.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    step = max(1, _BOOT_CHUNK_ELEMENTS // x.size)
    for start in range(0, n_boot, step):
        stop = min(start + step, n_boot)
        means[start:stop] = x[rng.integers(0, x.size, size=(stop - start, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return (float(low), float(high))


def paired_bootstrap_ci(
    a: np.ndarray, b: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(a - b) when a[i] and b[i] score the same prompt.

    Each resample draws one set of indices (the draw of `bootstrap_ci`) and applies it to both
    vectors, so the between-prompt variance the two models share cancels; (nan, nan) when empty.
    """
    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if x.size != y.size:
        raise SelfsimError(f"a paired bootstrap needs one score per prompt from each side; got {x.size} and {y.size}")
    return bootstrap_ci(x - y, n_boot=n_boot, seed=seed, level=level)


def paired_gap(
    scored_a: pd.DataFrame,
    scored_b: pd.DataFrame,
    *,
    noncompliant: Noncompliant = "wrong",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Accuracy gap a - b of two `score()` tables over the same (object_id, property) rows, paired CI.

    "exclude" keeps the rows where the object answer and both meta answers are compliant.
    Returns gap, ci_low, ci_high, n, accuracy_a, accuracy_b, noncompliant.
    """
    _check_mode(noncompliant)
    sides = []
    for df, name in ((scored_a, "scored_a"), (scored_b, "scored_b")):
        require_columns(df, ("object_id",) + SCORED_COLUMNS, name)
        _unique_keys(df, name)
        sides.append(pd.DataFrame({
            "object_id": df["object_id"], "property": df["property"], "correct": _bools(df, "correct", name),
            "meta_compliant": _bools(df, "meta_compliant", name), "object_compliant": _bools(df, "object_compliant", name),
        }))
    both = sides[0].merge(sides[1], on=_KEY, how="outer", suffixes=("_a", "_b"), indicator=True)
    unmatched = both["_merge"] != "both"
    if unmatched.any():
        example = tuple(both.loc[unmatched, _KEY].iloc[0])
        raise SelfsimError(
            f"{int(unmatched.sum())} (object_id, property) row(s) are scored for only one model, e.g. {example}; "
            "a paired gap needs both models scored on the same prompts"
        )
    both = both.sort_values(_KEY, kind="mergesort")
    if noncompliant == "exclude":
        both = both[both["object_compliant_a"] & both["meta_compliant_a"] & both["meta_compliant_b"]]
    a, b = both["correct_a"].to_numpy(dtype=float), both["correct_b"].to_numpy(dtype=float)
    low, high = paired_bootstrap_ci(a, b, n_boot=n_boot, seed=seed, level=level)
    empty = a.size == 0
    return {
        "gap": float("nan") if empty else float(a.mean() - b.mean()),
        "ci_low": low,
        "ci_high": high,
        "n": int(a.size),
        "accuracy_a": float("nan") if empty else float(a.mean()),
        "accuracy_b": float("nan") if empty else float(b.mean()),
        "noncompliant": noncompliant,
    }


def _accuracy(correct: np.ndarray, n_boot: int, seed: int, suffix: str = "") -> dict[str, Any]:
    """accuracy, ci_low, ci_high (each with `suffix`) and n for a boolean vector."""
    n = int(correct.size)
    low, high = bootstrap_ci(correct, n_boot=n_boot, seed=seed)
    return {
        f"accuracy{suffix}": float(correct.mean()) if n else float("nan"),
        f"ci_low{suffix}": low,
        f"ci_high{suffix}": high,
        "n": n,
    }


def _groups(df: pd.DataFrame) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """Yield (task, property, rows): each pair, then task=ALL per property, then ALL/ALL."""
    for (task, prop), rows in df.groupby(["task", "property"], sort=True):
        yield cast(str, task), cast(str, prop), rows
    for prop, rows in df.groupby("property", sort=True):
        yield ALL, cast(str, prop), rows
    yield ALL, ALL, df


def _table(df: pd.DataFrame, summarise: Callable[[str, str, pd.DataFrame], dict[str, Any]]) -> pd.DataFrame:
    """One row per `_groups` group: task, property and whatever `summarise` returns."""
    return pd.DataFrame.from_records(
        [{"task": task, "property": prop, **summarise(task, prop, rows)} for task, prop, rows in _groups(df)]
    )


def score(predictions: pd.DataFrame, behavior: pd.DataFrame) -> pd.DataFrame:
    """Join predictions to behaviour on (object_id, property); add target, compliance and `correct`.

    Keeps the prediction columns (`compliant` renamed `meta_compliant`) and adds `target`
    (f(M(P))), `object_compliant`, `object_response` (when behaviour has `response`) and `correct`.
    """
    require_columns(predictions, PREDICTION_COLUMNS, "predictions")
    require_columns(behavior, BEHAVIOR_COLUMNS, "behaviour")
    _unique_keys(behavior, "behaviour")
    added = ("target", "meta_compliant", "object_compliant", "object_response", "correct")
    clash = [c for c in added if c in predictions.columns]
    if clash:
        raise SelfsimError(f"predictions already has column(s) {clash} that score() adds; drop or rename them")
    meta_compliant = _bools(predictions, "compliant", "predictions")
    pred = predictions.drop(columns=["compliant"]).assign(meta_compliant=meta_compliant)
    beh = pd.DataFrame({
        "object_id": behavior["object_id"],
        "property": behavior["property"],
        "_task": behavior["task"],
        "target": behavior["value"],
        "object_compliant": _bools(behavior, "compliant", "behaviour"),
    })
    if "response" in behavior.columns:
        beh["object_response"] = behavior["response"]
    merged = pred.merge(beh, on=_KEY, how="left", indicator=True, validate="many_to_one")
    missing = merged["_merge"] == "left_only"
    if missing.any():
        example = tuple(merged.loc[missing, _KEY].iloc[0])
        raise SelfsimError(
            f"{int(missing.sum())} prediction(s) have no behaviour row for their (object_id, property), "
            f"e.g. {example}; collect behaviour for every predicted prompt"
        )
    mismatch = merged["task"] != merged["_task"]
    if mismatch.any():
        row = merged[mismatch].iloc[0]
        raise SelfsimError(
            f"{int(mismatch.sum())} prediction(s) name a different task than their behaviour row, e.g. "
            f"object_id {row['object_id']!r}: {row['task']!r} vs {row['_task']!r}"
        )
    merged = merged.drop(columns=["_merge", "_task"])
    merged["correct"] = (
        merged["meta_compliant"]
        & merged["object_compliant"]
        & merged["answer"].notna()
        & merged["target"].notna()
        & (merged["answer"] == merged["target"])
    ).astype(bool)
    return merged


def hypothetical_accuracy(
    scored: pd.DataFrame, *, noncompliant: Noncompliant = "wrong", n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Accuracy with bootstrap CI per (task, property) plus micro-averaged ALL rows, from `score()`.

    Columns: task, property, accuracy, ci_low, ci_high, n (rows averaged), n_meta_noncompliant,
    n_object_noncompliant (counted before any exclusion), noncompliant (the mode used).
    """
    require_columns(scored, SCORED_COLUMNS, "scored")
    _check_mode(noncompliant)
    df = pd.DataFrame({
        "task": scored["task"],
        "property": scored["property"],
        "correct": _bools(scored, "correct", "scored"),
        "meta_compliant": _bools(scored, "meta_compliant", "scored"),
        "object_compliant": _bools(scored, "object_compliant", "scored"),
    })

    def summarise(_task: str, _prop: str, rows: pd.DataFrame) -> dict[str, Any]:
        kept = rows if noncompliant == "wrong" else rows[rows["meta_compliant"] & rows["object_compliant"]]
        return {
            **_accuracy(kept["correct"].to_numpy(), n_boot, seed),
            "n_meta_noncompliant": int((~rows["meta_compliant"]).sum()),
            "n_object_noncompliant": int((~rows["object_compliant"]).sum()),
            "noncompliant": noncompliant,
        }

    return _table(df, summarise)


def _modes(behavior: pd.DataFrame) -> dict[tuple[str, str], str]:
    """Most common compliant value per (task, property); ties go to the lexicographically smallest."""
    ok = behavior[_bools(behavior, "compliant", "behaviour") & behavior["value"].notna()]
    counts = ok.groupby(["task", "property", "value"]).size().reset_index(name="count")
    counts = counts.sort_values(
        ["task", "property", "count", "value"], ascending=[True, True, False, True], kind="mergesort"
    ).drop_duplicates(["task", "property"])
    return {(t, p): v for t, p, v in zip(counts["task"], counts["property"], counts["value"])}


def mode_baseline(
    behavior: pd.DataFrame,
    train_behavior: pd.DataFrame | None = None,
    *,
    noncompliant: Noncompliant = "wrong",
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Accuracy of always answering the modal f(M1(P)) of each (task, property), on `behavior`.

    The mode comes from `train_behavior` when given (every evaluated pair must appear there), else
    from `behavior` itself as in the paper. "wrong" counts non-compliant object rows as misses;
    "exclude" drops them. Columns as `hypothetical_accuracy` plus `mode` (None on ALL rows), `mode_from`.
    """
    require_columns(behavior, BEHAVIOR_COLUMNS, "behaviour")
    _unique_keys(behavior, "behaviour")
    _check_mode(noncompliant)
    if train_behavior is None:
        modes, source = _modes(behavior), "behaviour"
    else:
        require_columns(train_behavior, BEHAVIOR_COLUMNS, "train_behavior")
        _unique_keys(train_behavior, "train_behavior")
        pairs = set(zip(behavior["task"], behavior["property"]))
        absent = sorted(pairs - set(zip(train_behavior["task"], train_behavior["property"])))
        if absent:
            raise SelfsimError(
                f"train_behavior has no rows for (task, property) pair(s) {absent}; "
                "give it those pairs or omit it to take the mode from the evaluated behaviour"
            )
        modes, source = _modes(train_behavior), "train_behaviour"
    compliant = _bools(behavior, "compliant", "behaviour")
    keys = zip(behavior["task"], behavior["property"])
    mode = pd.Series([modes.get(k) for k in keys], index=behavior.index, dtype=object)
    df = pd.DataFrame({
        "task": behavior["task"],
        "property": behavior["property"],
        "compliant": compliant,
        "correct": (compliant & behavior["value"].notna() & mode.notna() & (behavior["value"] == mode)).astype(bool),
    })

    def summarise(task: str, prop: str, rows: pd.DataFrame) -> dict[str, Any]:
        kept = rows if noncompliant == "wrong" else rows[rows["compliant"]]
        return {
            "mode": None if task == ALL else modes.get((task, prop)),
            **_accuracy(kept["correct"].to_numpy(), n_boot, seed),
            "n_object_noncompliant": int((~rows["compliant"]).sum()),
            "noncompliant": noncompliant,
            "mode_from": source,
        }

    return _table(df, summarise)


# ----------------------------------------------------------------------------- calibration

@dataclass
class CalibrationResult:
    """Calibration of hypothetical sampling against object-level sampling (SPEC experiment 3).

    pairs: object_id, rank (1 = most frequent object value), value, object_prob, hypothetical_prob, bin.
    curve: bin, n, object_prob, hypothetical_prob (bin means), object_prob_min, object_prob_max.
    mad: 100 x mean over bins of |mean object prob - mean hypothetical prob| over all pairs;
    mad_by_rank: the same computed on the pairs of each rank alone (the paper's per-rank legend).
    """

    pairs: pd.DataFrame
    curve: pd.DataFrame
    mad: float
    mad_by_rank: dict[int, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (rank keys as strings)."""
        return {
            "pairs": to_records(self.pairs),
            "curve": to_records(self.curve),
            "mad": self.mad,
            "mad_by_rank": {str(k): v for k, v in self.mad_by_rank.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CalibrationResult:
        """Inverse of `to_dict` (reads a result back from a run directory)."""
        return cls(
            pairs=pd.DataFrame.from_records(d["pairs"]),
            curve=pd.DataFrame.from_records(d["curve"]),
            mad=d["mad"],
            mad_by_rank={int(k): v for k, v in d.get("mad_by_rank", {}).items()},
        )


def _sample_values(samples: pd.DataFrame, name: str) -> pd.DataFrame:
    """object_id and value of a samples table; a `compliant`=False row has no value."""
    require_columns(samples, SAMPLE_COLUMNS, name)
    if "property" in samples.columns and samples["property"].nunique() > 1:
        raise SelfsimError(
            f"{name} mixes properties {sorted(samples['property'].unique())}; calibrate one property at a time"
        )
    value = samples["value"]
    if "compliant" in samples.columns:
        value = value.where(_bools(samples, "compliant", name))
    return pd.DataFrame({"object_id": samples["object_id"], "value": value})


def _bin_pairs(pairs: pd.DataFrame, n_bins: int) -> tuple[np.ndarray, pd.DataFrame, float]:
    """Equal-frequency bins by object_prob (ties ordered by object_id, rank): bin ids, curve, MAD."""
    order = pairs.sort_values(["object_prob", "object_id", "rank"], kind="mergesort").index
    bins = pd.Series(0, index=pairs.index, dtype=int)
    for b, chunk in enumerate(c for c in np.array_split(np.asarray(order), n_bins) if len(c)):
        bins.loc[chunk] = b
    curve = (
        pairs.assign(bin=bins)
        .groupby("bin", sort=True)
        .agg(
            n=("object_prob", "size"),
            object_prob=("object_prob", "mean"),
            hypothetical_prob=("hypothetical_prob", "mean"),
            object_prob_min=("object_prob", "min"),
            object_prob_max=("object_prob", "max"),
        )
        .reset_index()
    )
    mad = float(100 * (curve["object_prob"] - curve["hypothetical_prob"]).abs().mean())
    return bins.to_numpy(), curve, mad


def calibration(
    object_samples: pd.DataFrame, meta_samples: pd.DataFrame, *, top_k: int = 3, n_bins: int = 10
) -> CalibrationResult:
    """Object-vs-hypothetical calibration and MAD from independent T=1 samples (SPEC experiment 3).

    Per prompt, the object distribution is over property values f(sample) of the compliant object
    samples (several responses with one value pool, as in the paper); the hypothetical distribution
    is over all meta samples of that prompt, so a non-compliant meta answer is mass on no value.
    For the `top_k` most frequent object values (ties: lexicographically smallest value first; a
    prompt with fewer distinct values gives fewer pairs) pair the object probability with the
    hypothetical probability of that same value (0 if never sampled). Prompts lacking compliant object
    samples or any meta sample are skipped. Pairs are sorted by object probability (then object_id,
    rank) and cut into `n_bins` near-equal chunks (np.array_split; empty chunks dropped when there
    are fewer pairs than bins) — deterministic where the paper's pd.qcut would merge tied edges.
    """
    if top_k < 1 or n_bins < 1:
        raise SelfsimError(f"top_k and n_bins must be >= 1, got top_k={top_k}, n_bins={n_bins}")
    obj = _sample_values(object_samples, "object_samples")
    meta = _sample_values(meta_samples, "meta_samples")
    obj = obj[obj["value"].notna()]
    obj = obj[obj["object_id"].isin(set(meta["object_id"]))]
    if obj.empty:
        raise SelfsimError(
            "calibration has no prompt with both a compliant object sample and a meta sample; "
            "check that object_samples and meta_samples share object_ids"
        )
    counts = obj.groupby(["object_id", "value"]).size().rename("count").reset_index()
    counts["object_prob"] = counts["count"] / counts.groupby("object_id")["count"].transform("sum")
    counts = counts.sort_values(["object_id", "count", "value"], ascending=[True, False, True], kind="mergesort")
    counts["rank"] = counts.groupby("object_id").cumcount() + 1
    top = counts[counts["rank"] <= top_k]

    meta_total = meta.groupby("object_id").size().rename("total")
    meta_counts = meta[meta["value"].notna()].groupby(["object_id", "value"]).size().rename("hits").reset_index()
    pairs = top.merge(meta_counts, on=["object_id", "value"], how="left").merge(meta_total, on="object_id")
    pairs["hypothetical_prob"] = pairs["hits"].fillna(0) / pairs["total"]
    pairs = pairs[["object_id", "rank", "value", "object_prob", "hypothetical_prob"]].reset_index(drop=True)

    bins, curve, mad = _bin_pairs(pairs, n_bins)
    pairs["bin"] = bins
    mad_by_rank = {int(cast(int, r)): _bin_pairs(g, n_bins)[2] for r, g in pairs.groupby("rank", sort=True)}
    return CalibrationResult(pairs=pairs, curve=curve, mad=mad, mad_by_rank=mad_by_rank)


# ----------------------------------------------------------------------------- behaviour shift

def behavior_shift(
    predictions: pd.DataFrame,
    old: pd.DataFrame,
    new: pd.DataFrame,
    *,
    noncompliant: Noncompliant = "wrong",
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """On prompts whose property value changed from `old` to `new` behaviour, accuracy vs each.

    A prompt changed when both object answers are compliant and f differs (as in the paper).
    Columns: task, property, n, accuracy_new, ci_low_new, ci_high_new, accuracy_old, ci_low_old,
    ci_high_old, n_meta_noncompliant, noncompliant. Both CIs use `seed`, so they resample the same rows.
    """
    sides = []
    for df, name in ((old, "old"), (new, "new")):
        require_columns(df, BEHAVIOR_COLUMNS, name)
        _unique_keys(df, name)
        sides.append(df[_KEY + ["value"]].assign(compliant=_bools(df, "compliant", name)))
    require_columns(predictions, PREDICTION_COLUMNS, "predictions")
    _check_mode(noncompliant)
    both = sides[0].merge(sides[1], on=_KEY, suffixes=("_old", "_new"))
    changed = both[
        both["compliant_old"]
        & both["compliant_new"]
        & both["value_old"].notna()
        & both["value_new"].notna()
        & (both["value_old"] != both["value_new"])
    ]
    keys = pd.MultiIndex.from_frame(changed[_KEY])
    shifted = predictions[pd.MultiIndex.from_frame(predictions[_KEY]).isin(keys)]
    vs_new, vs_old = score(shifted, new), score(shifted, old)
    df = pd.DataFrame({
        "task": vs_new["task"],
        "property": vs_new["property"],
        "meta_compliant": vs_new["meta_compliant"],
        "correct_new": vs_new["correct"],
        "correct_old": vs_old["correct"],
    })

    def summarise(_task: str, _prop: str, rows: pd.DataFrame) -> dict[str, Any]:
        kept = rows if noncompliant == "wrong" else rows[rows["meta_compliant"]]
        return {
            **_accuracy(kept["correct_new"].to_numpy(), n_boot, seed, "_new"),
            **_accuracy(kept["correct_old"].to_numpy(), n_boot, seed, "_old"),
            "n_meta_noncompliant": int((~rows["meta_compliant"]).sum()),
            "noncompliant": noncompliant,
        }

    return _table(df, summarise)


def unchanged_share(before: pd.DataFrame, after: pd.DataFrame) -> float:
    """Share of object-level answers a finetune left unchanged, over prompts present in both tables.

    Compares the full `response` per object_id when both tables have it, else `value` per
    (object_id, property); two missing answers count as unchanged.
    """
    use_response = "response" in before.columns and "response" in after.columns
    key, col = (["object_id"], "response") if use_response else (_KEY, "value")
    sides = []
    for df, name in ((before, "before"), (after, "after")):
        require_columns(df, tuple(key) + (col,), name)
        rows = df[key + [col]].drop_duplicates()
        dup = rows.duplicated(key, keep=False)
        if dup.any():
            raise SelfsimError(
                f"{name} has {int(dup.sum())} rows giving one {tuple(key)} different {col}s, e.g. "
                f"{tuple(rows.loc[dup, key].iloc[0])}; pass the temperature-0 behaviour"
            )
        sides.append(rows)
    both = sides[0].merge(sides[1], on=key, suffixes=("_before", "_after"))
    if both.empty:
        raise SelfsimError(f"before and after share no {tuple(key)}; compare behaviour on the same prompts")
    b, a = both[f"{col}_before"], both[f"{col}_after"]
    same = (b.isna() & a.isna()) | (b.notna() & a.notna() & (b == a))
    return float(same.mean())


# ----------------------------------------------------------------------------- serialisation

def _plain(value: Any) -> Any:
    """A JSON-ready Python scalar: numpy scalars unwrapped, NaN/NA -> None."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return value


def to_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a result table as JSON-serialisable dicts (NaN -> None, numpy -> Python)."""
    return [{str(k): _plain(v) for k, v in row.items()} for row in df.to_dict("records")]
