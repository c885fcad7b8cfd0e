"""From evidence rows to a verdict on self-simulation, per (model, property), by a rule fixed before any data.

An `Evidence` row is one experiment's effect as its EXCESS over one control (untrained model,
transplant) with a paired bootstrap 95% CI over items and the number of items; gate rows (control
`none`) carry a raw rate. docs/verdict.md, section "Rule", states the same and names the commit.

Decisive tests intervene on g, the component where OBJECT runs localise the object computation:
- interchange: g's output inside H(P) replaced by its output on the object run of P' (f(M(P')) !=
  f(M(P))), at P's copy (`interchange_copy`) and, separately, at H's final position
  (`interchange_final`); scored rate[H == f(M(P'))]. The test SUPPORTS when some site supports and
  REJECTS when every site present rejects (a self-simulator needs g at one place, not both).
- edit transfer (`edit_transfer`): an object-only edit of g's component; scored on edited items as
  share[H == f(new M(P))] minus share[H == a third value, neither old nor new]. Decisive only when
  `EDIT_TRANSFER_VALIDATED` (see below); otherwise reported, never deciding.
A site (or the edit) SUPPORTS when its rows over BOTH controls (untrained, transplant) have
ci_low > SUPPORT, REJECTS when a row over either control has ci_high < REJECT; it is OPEN otherwise,
or when a control row is missing, a row rests on fewer than MIN_N items, or a validity gate fails:
- interchange: `interchange_object` (patching g's node from P' moves the object answer to M(P'))
  needs ci_low >= MIN_MOVE, and `interchange_input` (the same patch into the neutral prompt hands it
  P''s visible text: the node carries the input, upstream of g) needs effect <= MAX_INPUT_CARRY
  (amendment of 02:40 UTC, docs/verdict.md "Amendment 1"); and each site counts only when the same
  patch at that site ALONE moves the object answer, `interchange_object_copy` /
  `interchange_object_final` ci_low >= MIN_MOVE, else that site is open (Amendment 2, 03:00 UTC);
- edit: `edit_object` (the edit moves the object answer to the new one) ci_low >= MIN_MOVE;
  `edit_retained` (unedited object accuracy over baseline) >= MIN_RETAINED; `edit_drift`
  (hypothetical accuracy on unedited items, edited minus before) |effect| <= MAX_DRIFT.
Verdict: **supported** when every decisive test supports; **not supported** when every decisive
test rejects; **inconclusive** otherwise. Steering, copy patching, probes, lens and SAE overlap are
diagnostics: their rows may sit beside these and never decide.

`EDIT_TRANSFER_VALIDATED` is False until `selfsim verdict --planted` has shown that edit transfer
ALONE (`decide(rows, decisive=(EDIT_TRANSFER,))`) calls S' supported and both N variants and U' not
supported on 3 seeds; only a commit recording that in docs/verdict.md may set it True. Until then
interchange at g's node (P's copy / H's final position) is the one decisive test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from selfsim.errors import SelfsimError

SUPPORT = 0.20
REJECT = 0.10
MIN_MOVE = 0.60
MAX_INPUT_CARRY = 0.30
MIN_RETAINED = 0.90
MAX_DRIFT = 0.10
MIN_N = 20
CONFIDENCE = 0.95
N_BOOT = 2000
EDIT_TRANSFER_VALIDATED = False

VERDICTS = ("supported", "not supported", "inconclusive")
# Controls.
UNTRAINED = "untrained"
TRANSPLANT = "transplant"
NONE = "none"
CONTROLS = (UNTRAINED, TRANSPLANT)
# Decisive experiments and their gates.
INTERCHANGE = "interchange"
INTERCHANGE_OBJECT = "interchange_object"
INTERCHANGE_INPUT = "interchange_input"
INTERCHANGE_COPY = "interchange_copy"
INTERCHANGE_FINAL = "interchange_final"
INTERCHANGE_SITES = (INTERCHANGE_COPY, INTERCHANGE_FINAL)
# Amendment 2: each site's power gate, the same patch at that site alone in the object run.
INTERCHANGE_OBJECT_COPY = "interchange_object_copy"
INTERCHANGE_OBJECT_FINAL = "interchange_object_final"
SITE_GATES = {INTERCHANGE_COPY: INTERCHANGE_OBJECT_COPY, INTERCHANGE_FINAL: INTERCHANGE_OBJECT_FINAL}
EDIT_TRANSFER = "edit_transfer"
EDIT_OBJECT = "edit_object"
EDIT_RETAINED = "edit_retained"
EDIT_DRIFT = "edit_drift"
TESTS = (INTERCHANGE, EDIT_TRANSFER)
# Diagnostics (selfsim.interp.steering): reported, never deciding.
STEERING = "steering"
STEERING_OBJECT = "steering_object"
PATCHING = "patching_copy"
RANDOM = "random_direction"
DIAGNOSTICS = (STEERING, STEERING_OBJECT, PATCHING)


def decisive_tests(edit_validated: bool = EDIT_TRANSFER_VALIDATED) -> tuple[str, ...]:
    """The tests that decide: interchange, plus edit transfer once it has passed the planted validation."""
    return TESTS if edit_validated else (INTERCHANGE,)


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


def excess(model: str, prop: str, experiment: str, control: str, values: Sequence[float],
           control_values: Sequence[float], *, seed: int = 0) -> Evidence:
    """An evidence row from PAIRED per-item scores (model, control on the same items): mean excess, bootstrap CI."""
    if len(values) != len(control_values):
        raise SelfsimError(f"{experiment} over {control}: {len(values)} scores but {len(control_values)} control scores; they must be paired")
    diffs = [float(v) - float(c) for v, c in zip(values, control_values)]
    mean, low, high = bootstrap_ci(diffs, seed=seed)
    raw = sum(map(float, values)) / len(values) if len(values) else None
    ctrl = sum(map(float, control_values)) / len(control_values) if len(control_values) else None
    return Evidence(model, prop, experiment, control, mean, low, high, len(diffs), raw=raw, control_value=ctrl)


def rate(model: str, prop: str, experiment: str, values: Sequence[float], *, seed: int = 0) -> Evidence:
    """A gate row (control `none`): the mean of per-item scores with its bootstrap CI."""
    mean, low, high = bootstrap_ci([float(v) for v in values], seed=seed)
    return Evidence(model, prop, experiment, NONE, mean, low, high, len(values), raw=mean)


def decide(rows: Sequence[Evidence], *, decisive: Sequence[str] | None = None) -> tuple[str, str]:
    """(verdict, reason) for the rows of ONE (model, property), by the rule in the module docstring.

    `decisive` overrides which tests decide (the planted validation scores each test alone)."""
    tests = tuple(decisive) if decisive is not None else decisive_tests()
    unknown = [t for t in tests if t not in TESTS]
    if unknown or not tests:
        raise SelfsimError(f"unknown decisive test(s) {', '.join(unknown) or '(none)'}; valid tests are {', '.join(TESTS)}")
    by = {(r.experiment, r.control): r for r in rows}
    outcomes = {t: (_interchange(by) if t == INTERCHANGE else _edit(by)) for t in tests}
    said = "; ".join(f"{t}: {o} ({why})" for t, (o, why) in outcomes.items())
    if all(o == "supports" for o, _ in outcomes.values()):
        return "supported", said
    if all(o == "rejects" for o, _ in outcomes.values()):
        return "not supported", said
    return "inconclusive", said


def verdicts(rows: Iterable[Evidence], *, decisive: Sequence[str] | None = None) -> list[Verdict]:
    """One Verdict per (model, property) among the rows, in sorted order."""
    groups: dict[tuple[str, str], list[Evidence]] = {}
    for r in rows:
        groups.setdefault((r.model, r.property), []).append(r)
    out = []
    for (model, prop), group in sorted(groups.items()):
        verdict, reason = decide(group, decisive=decisive)
        out.append(Verdict(model, prop, verdict, reason, tuple(group)))
    return out


def _site(by: dict[tuple[str, str], Evidence], experiment: str) -> tuple[str, str]:
    """supports / rejects / open for one experiment over both controls."""
    rows = [by.get((experiment, c)) for c in CONTROLS]
    present = [r for r in rows if r is not None]
    if len(present) < len(CONTROLS):
        missing = [c for c, r in zip(CONTROLS, rows) if r is None]
        return "open", f"no row over {', '.join(missing)}"
    small = [r for r in present if r.n < MIN_N]
    if small:
        return "open", f"{_name(small[0])} rests on {small[0].n} items (< {MIN_N})"
    if all(r.ci_low > SUPPORT for r in present):
        return "supports", f"over both controls ci_low > {SUPPORT}: {_list(present)}"
    low = [r for r in present if r.ci_high < REJECT]
    if low:
        return "rejects", f"ci_high < {REJECT}: {_list(low)}"
    return "open", f"CIs between the thresholds: {_list(present)}"


def _gate(by: dict[tuple[str, str], Evidence], experiment: str, ok: Callable[[Evidence], bool], need: str) -> str | None:
    """None if the gate row exists, has MIN_N items and passes `ok`; else why not."""
    r = by.get((experiment, NONE))
    if r is None:
        return f"no {experiment} row"
    if r.n < MIN_N:
        return f"{experiment} rests on {r.n} items (< {MIN_N})"
    if not ok(r):
        return f"gate failed: {experiment} {r.effect:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}] needs {need}"
    return None


def _interchange(by: dict[tuple[str, str], Evidence]) -> tuple[str, str]:
    failed = (_gate(by, INTERCHANGE_OBJECT, lambda r: r.ci_low >= MIN_MOVE, f"ci_low >= {MIN_MOVE}")
              or _gate(by, INTERCHANGE_INPUT, lambda r: r.effect <= MAX_INPUT_CARRY, f"<= {MAX_INPUT_CARRY} (else the node carries P's text)"))
    if failed:
        return "open", failed
    sites = {s: _powered_site(by, s) for s in INTERCHANGE_SITES if any(k[0] == s for k in by)}
    if not sites:
        return "open", "no interchange rows"
    said = "; ".join(f"{s} {o}: {why}" for s, (o, why) in sites.items())
    if any(o == "supports" for o, _ in sites.values()):
        return "supports", said
    if all(o == "rejects" for o, _ in sites.values()):
        return "rejects", said
    return "open", said


def _powered_site(by: dict[tuple[str, str], Evidence], site: str) -> tuple[str, str]:
    """A site is open unless the same patch at that site alone moves the object answer (ci_low >= MIN_MOVE)."""
    failed = _gate(by, SITE_GATES[site], lambda r: r.ci_low >= MIN_MOVE, f"ci_low >= {MIN_MOVE} (the site has no power)")
    return ("open", failed) if failed else _site(by, site)


def _edit(by: dict[tuple[str, str], Evidence]) -> tuple[str, str]:
    for experiment, ok, need in (
        (EDIT_OBJECT, lambda r: r.ci_low >= MIN_MOVE, f"ci_low >= {MIN_MOVE}"),
        (EDIT_RETAINED, lambda r: r.effect >= MIN_RETAINED, f">= {MIN_RETAINED}"),
        (EDIT_DRIFT, lambda r: abs(r.effect) <= MAX_DRIFT, f"|drift| <= {MAX_DRIFT}"),
    ):
        failed = _gate(by, experiment, ok, need)
        if failed:
            return "open", failed
    return _site(by, EDIT_TRANSFER)


def _name(r: Evidence) -> str:
    return f"{r.experiment} over {r.control}"


def _list(rows: Sequence[Evidence]) -> str:
    return "; ".join(f"{_name(r)} {r.effect:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}] n={r.n}" for r in rows)
