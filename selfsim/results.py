"""The typed contents of a study's results.json: written by `selfsim.study`, read by the report and `selfsim verdict`.

`StudyResults.to_dict()` is what results.json holds and `StudyResults.from_dict` (or `load_results`) reads
it back. Tables of `selfsim.evaluate` (one row per task x property, ALL/ALL the micro average) stay lists of
records (`Records`); everything around them is a dataclass, so a renamed condition fails where it is read.
The primary pair's extra experiments live in `PairResult.experiments`, keyed by experiment name, and the module
that registered each in `PairResult.origins`; `EXPERIMENTS` (each experiment's result type) is how results.json
decodes them, after importing the plugin modules named in the config's `plugins`.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from selfsim.errors import SelfsimError
from selfsim.io import read_json
from selfsim.registry import Registry

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


def micro_row(records: Records) -> dict[str, Any]:
    """The ALL/ALL row of an evaluate table; a table without one is a SelfsimError."""
    row = all_row(records)
    if row is None:
        raise SelfsimError("a result table has no ALL/ALL (micro-average) row")
    return row


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
@dataclass(frozen=True)
class Experiment:
    """One study experiment, registered in one place (`selfsim.study.experiments.register`).

    `run(context)` (a `selfsim.study.experiments.PairContext`) returns an instance of the dataclass `result`, which
    results.json stores under `PairResult.experiments[name]` (with `module`, the registering module, in
    `PairResult.origins[name]`); `section(result, pair)` draws it in the report as [(title, figure or DataFrame)],
    `headline(result, results)` adds rows to the report's headline table, `notes(result, results)` sentences
    to its notes and `lead(result, results)` paragraphs to the report's opening, above everything else.
    """

    name: str
    run: Callable[[Any], Any]
    result: type[Any]
    module: str
    section: Callable[[Any, PairResult], list[tuple[str, Any]]] | None = None
    headline: Callable[[Any, StudyResults], list[dict[str, Any]]] | None = None
    notes: Callable[[Any, StudyResults], list[str]] | None = None
    lead: Callable[[Any, StudyResults], list[str]] | None = None


# The built-in experiments register themselves when selfsim.study.experiments is imported (on first lookup);
# a plugin module named in a study config's `plugins` registers its own (imported by `load_plugins`).
EXPERIMENTS: Registry[Experiment] = Registry("experiment", modules=("selfsim.study.experiments",))


def load_plugins(modules: Iterable[str]) -> None:
    """Import each plugin module (it registers experiments, properties, ...); a failing import is one SelfsimError."""
    for module in modules:
        if not isinstance(module, str) or not all(part.isidentifier() for part in module.split(".")):
            raise SelfsimError(f"plugin {module!r} is not a module name; give dotted names such as 'mypkg.my_experiment'")
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise SelfsimError(f"plugin module {module!r} cannot be imported ({exc}); put it on PYTHONPATH "
                               "or remove it from the config's plugins") from None


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
    origins: dict[str, str] = field(default_factory=dict)  # experiment name -> the module that registered it

    def split(self, split: str) -> SplitResult:
        """Scores on `split` (eval_ood: held-out tasks, eval_id: held-out prompts of training tasks)."""
        return getattr(self, _check("split", split, ("eval_ood", "eval_id")))

    def experiment(self, cls: type[T]) -> T | None:
        """The result of type `cls` (an experiment's result type), if that experiment ran on this pair."""
        return next((value for value in self.experiments.values() if type(value) is cls), None)

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
        """Inverse of `to_dict`, after importing the plugin modules the config names; a SelfsimError names the
        first missing or unexpected key or unknown experiment."""
        config = data.get("config") if isinstance(data, dict) else None
        load_plugins((config or {}).get("plugins") or ())
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
                origins = value.get("origins") or {}
                kwargs[name] = {k: _decode(_experiment_type(k, origins.get(k)), x, f"{where}.experiments.{k}")
                                for k, x in v.items()}
            else:
                kwargs[name] = _decode(hints[name], v, f"{where}.{name}")
        return cast(type, tp)(**kwargs)
    return value


def _experiment_type(name: str, origin: str | None) -> type[Any]:
    """The result type of experiment `name` (written by module `origin`); unknown is one SelfsimError."""
    if name not in EXPERIMENTS:
        valid = ", ".join(EXPERIMENTS.names())
        where = f" written by module {origin!r}" if origin else ""
        raise SelfsimError(f"results.json holds experiment {name!r}{where}, which no loaded module registers; name "
                           f"its module in the config's plugins (registered experiments: {valid})")
    return EXPERIMENTS.get(name).result
