"""The verdict on one model: localise g -> interchange at g's node -> edit transfer -> rule.

Every step's result is cached in the output directory (`localise.json`, `interchange.json`,
`edit.json`; atomic writes) and reused when the same run is started again, so an interrupted run
resumes at the step it was in. `run.json` records what the directory was computed from (model and
control fingerprints, examples, settings); a directory holding another run is refused, never mixed.
Results: `verdict.json` (verdicts with their evidence and the localisation), `verdict.parquet` (one
row per (model, property): verdict, reason, node and every evidence row's effect/CI/n as columns)
and `evidence.parquet` (the evidence rows, long).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfsim.errors import SelfsimError
from selfsim.examples import Example
from selfsim.io import atomic_open, read_json, write_json
from selfsim.verdict.localise import NODE_COMPONENTS, Localisation, Node, localise
from selfsim.verdict.rule import Evidence, Verdict, verdicts

if TYPE_CHECKING:
    from selfsim.models import Subject

STEPS = ("localise", "interchange", "edit")
RESULTS = ("verdict.json", "verdict.parquet", "evidence.parquet")


@dataclass(frozen=True)
class VerdictConfig:
    """How much work the verdict does: items, nodes searched, edit sets."""

    seed: int = 0
    max_items: int | None = None
    layers: tuple[int, ...] | None = None
    components: tuple[str, ...] = NODE_COMPONENTS
    edit: bool = True
    n_sets: int = 3
    per_set: int = 16
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.max_items is not None and self.max_items < 2:
            raise SelfsimError(f"max_items must be at least 2 (items are paired with donors), got {self.max_items}")
        for name in ("n_sets", "per_set", "batch_size"):
            if getattr(self, name) < 1:
                raise SelfsimError(f"{name} must be a positive integer, got {getattr(self, name)}")
        bad = [c for c in self.components if c not in NODE_COMPONENTS]
        if bad or not self.components:
            raise SelfsimError(f"unknown component(s) {', '.join(bad) or '(none)'}; valid components are {', '.join(NODE_COMPONENTS)}")


@dataclass(frozen=True)
class ModelVerdict:
    """One model's verdicts (one per property), the localisation they rest on, and where they were written."""

    model: str
    localisation: Localisation
    verdicts: tuple[Verdict, ...]
    out: Path

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what verdict.json holds)."""
        return {"model": self.model, "localisation": self.localisation.to_dict(),
                "verdicts": [v.to_dict() for v in self.verdicts]}

    @classmethod
    def from_dict(cls, d: dict[str, Any], out: str | Path = ".") -> ModelVerdict:
        """A ModelVerdict from its JSON form."""
        try:
            return cls(d["model"], Localisation.from_dict(d["localisation"]),
                       tuple(Verdict.from_dict(v) for v in d["verdicts"]), Path(out))
        except (KeyError, TypeError) as exc:
            raise SelfsimError(f"malformed verdict record ({exc!r}); rerun `selfsim verdict` into a new --out") from None

    @classmethod
    def load(cls, out: str | Path) -> ModelVerdict:
        """The verdict written in `out` (its verdict.json)."""
        return cls.from_dict(read_json(Path(out) / "verdict.json"), out)


def run_verdict(subject: Subject, examples: Sequence[Example], out: str | Path, *, untrained: Subject,
                config: VerdictConfig = VerdictConfig(), node: Node | None = None, label: str | None = None,
                progress: bool = True) -> ModelVerdict:
    """Localise g (object runs; only `node` when given), intervene at it with both controls, apply the rule."""
    from tqdm.auto import tqdm

    if not examples:
        raise SelfsimError("no examples for the verdict: give at least two object/hypothetical pairs")
    examples = list(examples)[: config.max_items] if config.max_items else list(examples)
    model = label or subject.name
    out = Path(out)
    _claim(out, _identity(subject, untrained, examples, config, node, model))
    bar = tqdm(total=len(STEPS) if config.edit else 2, desc=f"verdict ({model})", disable=not progress)

    def step(name: str, compute: Callable[[], Any], load: Callable[[Any], Any], dump: Callable[[Any], Any]) -> Any:
        path = out / f"{name}.json"
        if path.exists():
            result = load(read_json(path))
        else:
            result = compute()
            write_json(path, dump(result))
        bar.update(1)
        return result

    layers = config.layers if node is None else (node.layer,)
    components = config.components if node is None else (node.component,)
    loc: Localisation = step(
        "localise",
        lambda: localise(subject, examples, layers=layers, components=components, seed=config.seed,
                         batch_size=config.batch_size, progress=progress),
        Localisation.from_dict, Localisation.to_dict)
    rows: list[Evidence] = list(loc.gate)
    rows += step("interchange", lambda: _interchange(subject, examples, loc.node, untrained, config), _rows, _dicts)
    if config.edit:
        rows += step("edit", lambda: _edit(subject, examples, loc.node, untrained, config), _rows, _dicts)
    bar.close()
    rows = [replace(r, model=model) for r in rows]
    result = ModelVerdict(model, replace(loc, model=model), tuple(verdicts(rows)), out)
    _write_results(result)
    return result


def _interchange(subject: Subject, examples: Sequence[Example], node: Node, untrained: Subject,
                 config: VerdictConfig) -> list[Evidence]:
    from selfsim.verdict.interchange import interchange

    return interchange(subject, examples, node, untrained=untrained, seed=config.seed, batch_size=config.batch_size)


def _edit(subject: Subject, examples: Sequence[Example], node: Node, untrained: Subject, config: VerdictConfig) -> list[Evidence]:
    from selfsim.verdict.edit import edit_transfer

    return edit_transfer(subject, examples, node, untrained=untrained, n_sets=config.n_sets, per_set=config.per_set,
                         seed=config.seed)


def _rows(d: Any) -> list[Evidence]:
    return [Evidence.from_dict(e) for e in d]


def _dicts(rows: Sequence[Evidence]) -> list[dict[str, Any]]:
    return [r.to_dict() for r in rows]


def _identity(subject: Subject, untrained: Subject, examples: Sequence[Example], config: VerdictConfig,
              node: Node | None, model: str) -> dict[str, Any]:
    blob = json.dumps([e.id for e in examples]).encode()
    return {"model": model, "fingerprint": subject.fingerprint, "untrained": untrained.fingerprint,
            "examples": hashlib.sha256(blob).hexdigest()[:16], "n_examples": len(examples),
            "config": asdict(config), "node": asdict(node) if node else None}


def _claim(out: Path, identity: dict[str, Any]) -> None:
    """Record what `out` is computed from; refuse a directory that holds another run."""
    path = out / "run.json"
    if path.exists():
        held = read_json(path)
        if held != json.loads(json.dumps(identity)):
            diff = sorted(k for k in set(held) | set(identity) if held.get(k) != json.loads(json.dumps(identity.get(k))))
            raise SelfsimError(f"{out} holds a verdict run of other inputs (differs in {', '.join(diff)}); "
                               "use another --out or delete it")
        return
    if out.exists() and any(not p.name.startswith(".") for p in out.iterdir()):
        raise SelfsimError(f"{out} is not empty and holds no verdict run; use an empty or new --out")
    write_json(path, identity)


def table(results: Sequence[ModelVerdict]) -> list[dict[str, Any]]:
    """One flat row per (model, property): verdict, reason, node, localisation sharpness, every evidence row's numbers."""
    out = []
    for res in results:
        loc = res.localisation
        for v in res.verdicts:
            row: dict[str, Any] = {"model": v.model, "property": v.property, "verdict": v.verdict, "reason": v.reason,
                                   "node": str(loc.node), "runner_up": str(loc.runner_up) if loc.runner_up else None,
                                   "sharpness": loc.sharpness[0], "sharpness_low": loc.sharpness[1],
                                   "sharpness_high": loc.sharpness[2]}
            for e in v.evidence:
                key = f"{e.experiment}/{e.control}"
                row.update({f"{key}.effect": e.effect, f"{key}.ci_low": e.ci_low, f"{key}.ci_high": e.ci_high,
                            f"{key}.n": e.n})
            out.append(row)
    return out


def _write_results(result: ModelVerdict) -> None:
    import pandas as pd

    write_json(result.out / "verdict.json", result.to_dict())
    for name, frame in (("verdict.parquet", pd.DataFrame(table([result]))),
                        ("evidence.parquet", pd.DataFrame([e.to_dict() for v in result.verdicts for e in v.evidence]))):
        with atomic_open(result.out / name, "wb") as fh:
            frame.to_parquet(fh, index=False)


@dataclass(frozen=True)
class PlantedCall:
    """One planted model's verdict against the one expected of it, per test alone and by the rule."""

    seed: int
    kind: str
    expected: str | None
    verdict: str
    by_test: dict[str, str]
    node: str
    planted_node: str
    reason: str

    @property
    def right(self) -> bool | None:
        """Whether the rule's verdict is the expected one (None: no verdict is expected of this kind)."""
        return None if self.expected is None else self.verdict == self.expected


def run_planted(seeds: Sequence[int], out: str | Path, *, config: VerdictConfig = VerdictConfig(),
                kinds: Sequence[str] | None = None, progress: bool = True) -> list[PlantedCall]:
    """The validation: build every planted model of each seed (`selfsim.verdict.planted`) and run the verdict on it
    with the seed's object-only model as the untrained control; `planted.jsonl` / `planted.parquet` in `out`."""
    import pandas as pd

    from selfsim.io import write_jsonl
    from selfsim.verdict import planted
    from selfsim.verdict.rule import TESTS, decide

    tested = list(kinds) if kinds is not None else [k for k in planted.KINDS if k != "untrained"]
    bad = [k for k in tested if k not in planted.KINDS or k == "untrained"]
    if bad:
        valid = ", ".join(k for k in planted.KINDS if k != "untrained")
        raise SelfsimError(f"unknown planted kind(s) {', '.join(bad)}; valid kinds are {valid}")
    out = Path(out)
    calls: list[PlantedCall] = []
    planted_node = Node(planted.G_LAYER, planted.G_COMPONENT)
    for seed in seeds:
        w = planted.world(seed=seed)
        examples = planted.examples(w, per_key=4, seed=seed)
        untrained = planted.build(planted.config_for("untrained", seed))
        for kind in tested:
            subject = planted.build(planted.config_for(kind, seed))
            res = run_verdict(subject, examples, out / f"seed{seed}" / kind, untrained=untrained, config=config,
                              label=f"{kind}-s{seed}", progress=progress)
            for v in res.verdicts:
                by_test = {t: decide(v.evidence, decisive=(t,))[0] for t in TESTS}
                calls.append(PlantedCall(seed, kind, planted.EXPECTED.get(kind), v.verdict, by_test,
                                         str(res.localisation.node), str(planted_node), v.reason))
    rows = [asdict(c) | {"right": c.right} for c in calls]
    write_jsonl(out / "planted.jsonl", rows)
    with atomic_open(out / "planted.parquet", "wb") as fh:
        pd.DataFrame([{k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in r.items()} for r in rows]).to_parquet(fh, index=False)
    return calls
