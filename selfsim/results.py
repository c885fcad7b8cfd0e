"""The typed contents of a study's results.json: written by `selfsim.study`, read by the report and `selfsim verdict`.

`StudyResults.to_dict()` is what results.json holds and `StudyResults.from_dict` (or `load_results`) reads
it back. Tables of `selfsim.evaluate` (one row per task x property, ALL/ALL the micro average) stay lists of
records (`Records`); everything around them is a dataclass, so a renamed condition fails where it is read.
The primary pair's extra experiments live in `PairResult.experiments`, keyed by experiment name; each name's
result dataclass is registered with `@result_type(name)`, which is how results.json decodes it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from selfsim.errors import SelfsimError
from selfsim.io import read_json

Records = list[dict[str, Any]]  # rows of an evaluate table (task, property, accuracy, ci_low, ci_high, n, ...)
ALL = "ALL"
MODES = ("wrong", "exclude")
# Whose object-level behaviour a hypothetical answer is scored against: the self-trained M1's current
# behaviour (primary, as the paper's code) or M1's behaviour before finetuning (secondary).
TARGETS = {
    "m1_after": "the self-trained M1's current behaviour (M1ft)",
    "m1_before": "M1's pre-finetune behaviour",
}
CONDITIONS = ("untrained", "self_trained", "cross_trained", "untrained_m2")
PAPER = {
    "self_trained_llama70b": 48.5,
    "untrained_llama70b": 26.4,
    "mode_baseline_llama70b": 36.1,
    "cross_plateau": 35.0,
    "shift_new": 35.4,
    "shift_old": 21.7,
}

T = TypeVar("T")


def all_row(records: Records) -> dict[str, Any] | None:
    """The micro-averaged (ALL/ALL) row of an evaluate table, if present."""
    return next((r for r in records if r["task"] == ALL and r["property"] == ALL), None)


def _check(name: str, value: str, valid: tuple[str, ...] | dict[str, str]) -> str:
    if value not in valid:
        raise SelfsimError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
    return value


@dataclass(frozen=True)
class Modes:
    """One evaluate table in both non-compliance modes (non-compliant answers counted wrong / excluded)."""

    wrong: Records
    exclude: Records

    def of(self, mode: str) -> Records:
        """The table computed in non-compliance mode `mode`."""
        return getattr(self, _check("mode", mode, MODES))


@dataclass(frozen=True)
class Gap:
    """Self - cross accuracy gap (ALL/ALL) with its paired bootstrap CI, in both non-compliance modes."""

    wrong: dict[str, Any]
    exclude: dict[str, Any]

    def of(self, mode: str) -> dict[str, Any]:
        """The gap row (gap, ci_low, ci_high, n, ...) in non-compliance mode `mode`."""
        return getattr(self, _check("mode", mode, MODES))


@dataclass(frozen=True)
class TargetScores:
    """A condition's hypothetical accuracy against each target; own_* only for the models playing M2."""

    m1_after: Modes
    m1_before: Modes
    own_before: Modes | None = None
    own_after: Modes | None = None

    def of(self, target: str) -> Modes:
        """The accuracy against `target` (a TARGETS key, or own_before / own_after where scored)."""
        got = getattr(self, target, None) if target in ("m1_after", "m1_before", "own_before", "own_after") else None
        if got is None:
            valid = [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]
            raise SelfsimError(f"no accuracy against target {target!r}; valid: {', '.join(valid)}")
        return got


@dataclass(frozen=True)
class Conditions:
    """Every condition's scores: untrained M1, self-trained M1, cross-trained M2, untrained M2."""

    untrained: TargetScores
    self_trained: TargetScores
    cross_trained: TargetScores
    untrained_m2: TargetScores

    def of(self, condition: str) -> TargetScores:
        """The scores of `condition` (one of CONDITIONS)."""
        return getattr(self, _check("condition", condition, CONDITIONS))


@dataclass(frozen=True)
class ByTarget:
    """A per-target quantity against the two M1 targets."""

    m1_after: Any
    m1_before: Any

    def of(self, target: str) -> Any:
        """The quantity against `target` (a TARGETS key)."""
        return getattr(self, _check("target", target, TARGETS))


@dataclass(frozen=True)
class ModeBaselines(ByTarget):
    """The mode baseline against each target, in both non-compliance modes."""

    m1_after: Modes
    m1_before: Modes


@dataclass(frozen=True)
class Gaps(ByTarget):
    """The self - cross gap against each target."""

    m1_after: Gap
    m1_before: Gap


@dataclass(frozen=True)
class SplitResult:
    """Self vs cross on one evaluation split."""

    accuracy: Conditions
    mode_baseline: ModeBaselines
    gap: Gaps


@dataclass(frozen=True)
class Unchanged:
    """Share of object-level answers a finetune left unchanged (held-out prompts)."""

    self_trained: float
    cross_trained: float


# ----------------------------------------------------------------------------- the extra experiments
RESULT_TYPES: dict[str, type[Any]] = {}


def result_type(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: the dataclass holding experiment `name`'s result in `PairResult.experiments`."""

    def register(cls: type[T]) -> type[T]:
        RESULT_TYPES[name] = cls
        return cls

    return register


@dataclass(frozen=True)
class ScalingRow:
    """Cross-prediction accuracy (held-out tasks) of M2 trained on `n_train` prompts."""

    condition: str
    n_train: int
    n_items: int
    steps: int
    vs_m1_after: Modes
    vs_m1_before: Modes


@result_type("scaling")
@dataclass(frozen=True)
class Scaling:
    """The data-scaling curve of cross-prediction."""

    rows: list[ScalingRow]


@dataclass(frozen=True)
class FullControlRow:
    """Full-weight finetune of self or cross on `n_train` prompts (held-out tasks)."""

    condition: str
    n_train: int
    steps: int
    vs_m1_after: Modes
    vs_m1_before: Modes
    vs_own_before: Modes | None = None


@result_type("full_control")
@dataclass(frozen=True)
class FullControl:
    """The full-finetuning control."""

    rows: list[FullControlRow]


@result_type("calibration")
@dataclass(frozen=True)
class Calibration:
    """`selfsim.evaluate.CalibrationResult.to_dict()` per condition (object samples from M1ft)."""

    untrained: dict[str, Any]
    self_trained: dict[str, Any]
    cross_trained: dict[str, Any]


@result_type("shift")
@dataclass(frozen=True)
class Shift:
    """Behaviour shift: Mc's accuracy against its new vs the old behaviour on changed prompts."""

    changed: Records
    unchanged_share: float


@result_type("interp")
@dataclass(frozen=True)
class Interp:
    """Patching summary and logit-lens records (figures are in the run's figures/)."""

    patching: Any
    lens: Any


# ----------------------------------------------------------------------------- pairs and the study
@dataclass(frozen=True)
class PairResult:
    """One ordered pair (m1 plays M1, m2 plays M2); `experiments` only on the primary pair."""

    m1: str
    m2: str
    steps: int
    eval_ood: SplitResult
    eval_id: SplitResult
    unchanged: Unchanged
    targets: dict[str, str] = field(default_factory=lambda: dict(TARGETS))
    experiments: dict[str, Any] = field(default_factory=dict)

    def split(self, split: str) -> SplitResult:
        """Scores on `split` (eval_ood: held-out tasks, eval_id: held-out prompts of training tasks)."""
        return getattr(self, _check("split", split, ("eval_ood", "eval_id")))

    def experiment(self, cls: type[T]) -> T | None:
        """The result of the experiment whose registered type is `cls`, if it ran on this pair."""
        for name, value in self.experiments.items():
            if RESULT_TYPES.get(name) is cls:
                return value
        return None

    def headline(self, split: str = "eval_ood", mode: str = "wrong", target: str = "m1_after", *,
                 with_ci: bool = False) -> dict[str, Any]:
        """Micro-averaged (ALL/ALL) accuracy of each condition and of the mode baseline against `target`
        (default: M1ft); `cross_vs_own` scores cross against M2's own behaviour; with_ci gives
        (accuracy, ci_low, ci_high) tuples."""
        _check("target", target, TARGETS)

        def pick(records: Records) -> Any:
            row = all_row(records)
            if row is None:
                return (None, None, None) if with_ci else None
            return (row["accuracy"], row["ci_low"], row["ci_high"]) if with_ci else row["accuracy"]

        part = self.split(split)
        out = {cond: pick(part.accuracy.of(cond).of(target).of(mode)) for cond in CONDITIONS}
        out["mode_baseline"] = pick(part.mode_baseline.of(target).of(mode))
        out["cross_vs_own"] = pick(part.accuracy.cross_trained.of("own_before").of(mode))
        return out


@dataclass(frozen=True)
class Spread:
    """Self - cross gap per ordered pair (held-out tasks, ALL/ALL, vs `target`), its CIs, mean and std."""

    gaps: list[float]
    ci: list[list[float]]
    mean: float | None
    std: float | None
    target: str = "m1_after"
    note: str = "ordered pairs share models (both role orders), so they are not independent"


@dataclass(frozen=True)
class StudyResults:
    """Everything results.json holds; depends only on the config (same seed -> same bytes)."""

    config: dict[str, Any]
    pairs: list[PairResult]
    spread: Spread
    paper: dict[str, float] = field(default_factory=lambda: dict(PAPER))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what results.json holds)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyResults:
        """Inverse of `to_dict`; a SelfsimError names the first missing or unexpected key."""
        return _decode(cls, data, "results")

    @property
    def primary(self) -> PairResult:
        """The primary pair (the one the extra experiments ran on)."""
        return self.pairs[0]


def load_results(path: str | Path) -> StudyResults:
    """Read a results.json (or the results.json of a run directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise SelfsimError(f"{path.parent} holds no results.json: run `selfsim study --out {path.parent}` first")
    data = read_json(path)
    if isinstance(data, dict) and any(isinstance(p, dict) and "accuracy" in p for p in data.get("pairs") or []):
        raise SelfsimError(f"{path} predates the typed results schema; rerun `selfsim study --out {path.parent}` "
                           "with its config (finished stages are reused) to rewrite it")
    try:
        return StudyResults.from_dict(data)
    except SelfsimError as exc:
        raise SelfsimError(f"{path}: {exc}") from None


def _decode(tp: Any, value: Any, where: str) -> Any:
    """Build an instance of the annotated type `tp` from its JSON form (dataclasses, lists, dicts, optionals)."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _decode(args[0], value, where)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise SelfsimError(f"{where} should be a list, got {type(value).__name__}")
        return [_decode(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(tp)
        if not isinstance(value, dict):
            raise SelfsimError(f"{where} should be an object, got {type(value).__name__}")
        return {k: _decode(item, v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise SelfsimError(f"{where} should be an object, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp)}
        unknown = set(value) - set(fields)
        if unknown:
            raise SelfsimError(f"{where} has unknown key(s) {sorted(unknown)}; valid: {', '.join(fields)}")
        missing = [n for n, f in fields.items() if n not in value and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise SelfsimError(f"{where} is missing key(s) {missing}")
        kwargs = {}
        for name, v in value.items():
            if tp is PairResult and name == "experiments":
                kwargs[name] = {k: _decode(_experiment_type(k), x, f"{where}.experiments.{k}") for k, x in v.items()}
            else:
                kwargs[name] = _decode(hints[name], v, f"{where}.{name}")
        return cast(type, tp)(**kwargs)
    return value


def _experiment_type(name: str) -> type[Any]:
    if name not in RESULT_TYPES:
        raise SelfsimError(f"unknown experiment {name!r}; valid: {', '.join(RESULT_TYPES)}")
    return RESULT_TYPES[name]
