"""From evidence rows to a verdict on self-simulation, per (model, property), by rules fixed before any data.

An `Evidence` row is one experiment's effect as its EXCESS over one control (random direction,
transplant, untrained model), with a paired bootstrap 95% CI over prompts and the number of prompts.
The rule (docs/verdict.md, section "Thresholds", states the same):

- The object-run check (`steering_object` over `random_direction`) must show that the direction
  moves M(P): ci_low > MIN_OBJECT_SHIFT. Otherwise the steering test had no power: inconclusive.
- Decisive rows are steering over the random direction, steering over the untrained model and
  object->hypothetical patching over the transplant control (those present; steering over the
  random direction is required).
- supported: every decisive row has ci_low > MARGIN.
- not supported: some decisive STEERING row has ci_high < MARGIN (the model's hypothetical answer
  does not follow a change of its object answer), or every decisive row has ci_high < MARGIN.
- inconclusive: anything else, too few prompts (n < MIN_N), or a required row missing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from selfsim.errors import SelfsimError

MARGIN = 0.10
MIN_OBJECT_SHIFT = 0.20
MIN_N = 20
CONFIDENCE = 0.95
N_BOOT = 2000

VERDICTS = ("supported", "not supported", "inconclusive")
STEERING = "steering"
STEERING_OBJECT = "steering_object"
PATCHING = "patching_copy"
RANDOM = "random_direction"
UNTRAINED = "untrained"
TRANSPLANT = "transplant"
# (experiment, control) pairs whose rows decide; the first one is required.
DECISIVE: tuple[tuple[str, str], ...] = ((STEERING, RANDOM), (STEERING, UNTRAINED), (PATCHING, TRANSPLANT))
POWER_CHECK = (STEERING_OBJECT, RANDOM)


@dataclass(frozen=True)
class Evidence:
    """One experiment's effect over one control on one (model, property): excess, 95% CI, prompts."""

    model: str
    property: str
    experiment: str
    control: str
    effect: float
    ci_low: float
    ci_high: float
    n: int
    raw: float | None = None
    control_value: float | None = None

    def __post_init__(self) -> None:
        for name in ("effect", "ci_low", "ci_high"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or math.isnan(value):
                raise SelfsimError(f"evidence {self.experiment}/{self.control}: {name} must be a number, got {value!r}")
        if self.ci_low > self.ci_high:
            raise SelfsimError(f"evidence {self.experiment}/{self.control}: ci_low {self.ci_low} exceeds ci_high {self.ci_high}")
        if self.n < 0:
            raise SelfsimError(f"evidence {self.experiment}/{self.control}: n must be >= 0, got {self.n}")

    def to_dict(self) -> dict[str, Any]:
        """The row as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evidence:
        """An Evidence row from its JSON form; missing fields raise a SelfsimError naming them."""
        names = [f.name for f in fields(cls)]
        missing = [n for n in names[:8] if n not in d]
        if missing:
            raise SelfsimError(f"evidence row lacks {', '.join(missing)}; fields are {', '.join(names)}")
        return cls(**{k: d[k] for k in names if k in d})


@dataclass(frozen=True)
class Verdict:
    """The verdict on one (model, property), the reason in one sentence, and the rows it rests on."""

    model: str
    property: str
    verdict: str
    reason: str
    evidence: tuple[Evidence, ...]

    def to_dict(self) -> dict[str, Any]:
        """The verdict with its evidence rows as a JSON-ready dict."""
        return {"model": self.model, "property": self.property, "verdict": self.verdict, "reason": self.reason,
                "evidence": [e.to_dict() for e in self.evidence]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verdict:
        """A Verdict from its JSON form."""
        if d.get("verdict") not in VERDICTS:
            raise SelfsimError(f"unknown verdict {d.get('verdict')!r}; valid verdicts are {', '.join(VERDICTS)}")
        return cls(d["model"], d["property"], d["verdict"], d.get("reason", ""),
                   tuple(Evidence.from_dict(e) for e in d.get("evidence", [])))


def bootstrap_ci(values: Sequence[float], *, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap 95% CI of the mean of per-prompt (paired) differences."""
    import numpy as np

    x = np.asarray(list(values), dtype=float)
    if x.size == 0:
        return 0.0, -math.inf, math.inf
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    return float(x.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def decide(rows: Sequence[Evidence]) -> tuple[str, str]:
    """(verdict, reason) for the rows of ONE (model, property), by the rule in the module docstring."""
    by = {(r.experiment, r.control): r for r in rows}
    power = by.get(POWER_CHECK)
    if power is None:
        return "inconclusive", "no object-run check that the steering direction moves the object answer"
    if power.n < MIN_N or power.ci_low <= MIN_OBJECT_SHIFT:
        return "inconclusive", (f"the steering direction does not reliably move the object answer "
                                f"(excess {power.effect:.2f}, CI low {power.ci_low:.2f} <= {MIN_OBJECT_SHIFT}, n={power.n})")
    decisive = [by[k] for k in DECISIVE if k in by]
    if DECISIVE[0] not in by:
        return "inconclusive", "no steering-over-random-direction evidence"
    small = [r for r in decisive if r.n < MIN_N]
    if small:
        return "inconclusive", f"{_name(small[0])} rests on {small[0].n} prompts (< {MIN_N})"
    if all(r.ci_low > MARGIN for r in decisive):
        return "supported", "every decisive effect exceeds its control by more than " + f"{MARGIN}: " + _list(decisive)
    below = [r for r in decisive if r.ci_high < MARGIN]
    if any(r.experiment == STEERING for r in below) or len(below) == len(decisive):
        return "not supported", "effect below the margin with its whole CI: " + _list(below)
    return "inconclusive", "CIs straddle the margin " + f"{MARGIN}: " + _list(decisive)


def verdicts(rows: Iterable[Evidence]) -> list[Verdict]:
    """One Verdict per (model, property) among the rows, in sorted order."""
    groups: dict[tuple[str, str], list[Evidence]] = {}
    for r in rows:
        groups.setdefault((r.model, r.property), []).append(r)
    out = []
    for (model, prop), group in sorted(groups.items()):
        verdict, reason = decide(group)
        out.append(Verdict(model, prop, verdict, reason, tuple(group)))
    return out


def _name(r: Evidence) -> str:
    return f"{r.experiment} over {r.control}"


def _list(rows: Sequence[Evidence]) -> str:
    return "; ".join(f"{_name(r)} {r.effect:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}] n={r.n}" for r in rows)
