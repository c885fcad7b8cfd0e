"""The self-simulation verdict (docs/verdict.md) on the study's self-trained M1 and cross-trained M2.

Each model is tested against the model it was finetuned from (never trained on hypotheticals) as the
untrained control, on held-out-task prompts (at most MAX_PROMPTS) of every property whose value is not the answer token
itself (first_word's value is: any model handed another answer token says it). g is localised from
object runs; interchange at its node and edit transfer follow (`selfsim.verdict.run`). Every step is
cached under verdict/<model>/, so a resumed study does not redo it. The report opens with one
paragraph per (model, property) (`lead`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from selfsim.errors import SelfsimError
from selfsim.results import PairResult, StudyResults
from selfsim.study.experiments.base import PairContext, register

# Object prompts per property: the study's `interp_prompts`, at most MAX_PROMPTS to keep `make demo` within
# its budget (the rule needs >= 20 items per row, so the quick preset's 24 may leave rows short: inconclusive). One edit set of at most 20 items: edit transfer
# does not decide yet (docs/verdict.md), and each edit trains g's component, the stage's costliest part.
MAX_PROMPTS = 48
N_SETS = 1
PER_SET = 20
SKIP_PROPERTIES = ("first_word",)


@dataclass(frozen=True)
class VerdictStudy:
    """Per tested model (`self`, `cross`): its `ModelVerdict` as JSON (localisation, verdicts with evidence)."""

    models: dict[str, Any]
    models_tested: dict[str, str]


def verdict(ctx: PairContext) -> VerdictStudy:
    """Run the verdict on M1+self adapter (control M1) and M2+cross adapter (control M2)."""
    from dataclasses import replace

    from selfsim.models import load_subject
    from selfsim.verdict.run import ModelVerdict, VerdictConfig, run_verdict

    c, st = ctx.config, ctx.stages
    props = [p for p in c.properties if p not in SKIP_PROPERTIES] or list(c.properties)
    n = min(c.interp_prompts, MAX_PROMPTS)
    chosen = [e for p in props for e in [e for e in ctx.examples["eval_ood"] if e.property == p][:n]]
    config = VerdictConfig(seed=c.seed, n_sets=N_SETS, per_set=max(1, min(PER_SET, n // 2)))
    tested = {"self": (ctx.m1, ctx.adapters["self"]), "cross": (ctx.m2, ctx.adapters["cross"])}
    out: dict[str, Any] = {}
    for label, (base, adapter) in tested.items():
        where = st.out / "verdict" / label

        def run(base: str = base, adapter: Any = adapter, where: Any = where, label: str = label) -> None:
            opts = {"dtype": c.dtype, "device_map": c.device_map}
            subject = load_subject(base, adapter=adapter, **opts)
            untrained = load_subject(base, **opts)
            layers = c.layers_for(subject.n_layers)  # g is searched where the interp battery looks
            run_verdict(subject, chosen, where, untrained=untrained,
                        config=config if layers is None else replace(config, layers=tuple(layers)), label=f"{label} ({base})",
                        progress=st.progress)

        try:
            st.stage(f"verdict {label}", where / "verdict.json", run)
            out[label] = ModelVerdict.load(where).to_dict()
        except SelfsimError as exc:  # e.g. a model whose object answers do not vary: no donors, no verdict
            out[label] = {"model": f"{label} ({base})", "error": str(exc)}
    return VerdictStudy(out, {label: base for label, (base, _) in tested.items()})


def _verdicts(result: VerdictStudy) -> list[tuple[str, Any]]:
    from selfsim.verdict.run import ModelVerdict

    order = [label for label in ("self", "cross") if label in result.models]
    order += sorted(set(result.models) - set(order))
    return [(label, ModelVerdict.from_dict(result.models[label])) for label in order if "error" not in result.models[label]]


def paragraph(label: str, mv: Any, v: Any) -> str:
    """One paragraph: the verdict, the decisive effect with its CI over each control, where g was localised and
    how sharply, and what the non-deciding rows show."""
    from selfsim.verdict.rule import (
        EDIT_DRIFT,
        EDIT_OBJECT,
        EDIT_RETAINED,
        EDIT_TRANSFER,
        EDIT_TRANSFER_VALIDATED,
        INTERCHANGE_COPY,
        INTERCHANGE_FINAL,
        INTERCHANGE_OBJECT,
        TRANSPLANT,
        UNTRAINED,
    )

    by = {(e.experiment, e.control): e for e in v.evidence}

    def show(experiment: str) -> str:
        parts = []
        for control in (UNTRAINED, TRANSPLANT):
            e = by.get((experiment, control))
            if e is not None:
                raw = f" ({e.raw:.2f} vs {e.control_value:.2f})" if e.raw is not None and e.control_value is not None else ""
                parts.append(f"{e.effect:+.2f} [{e.ci_low:+.2f}, {e.ci_high:+.2f}] over {control}{raw}")
        return "; ".join(parts) or "not measured"

    gate = by.get((INTERCHANGE_OBJECT, "none"))
    moved = f"{gate.effect:.2f} [{gate.ci_low:.2f}, {gate.ci_high:.2f}], n={gate.n}" if gate else "not measured"
    edit = show(EDIT_TRANSFER)
    gates = [f"{name} {by[(name, 'none')].effect:.2f}" for name in (EDIT_OBJECT, EDIT_RETAINED, EDIT_DRIFT) if (name, "none") in by]
    if gates:
        edit += f" (gates: {', '.join(gates)})"
    edit_status = "decisive" if EDIT_TRANSFER_VALIDATED else "not yet validated on planted models, so it does not decide"
    return (f"{label} model {mv.model}, property {v.property}: {v.verdict.upper()}. Interchange at g's node inside H(P) "
            f"(rate that H answers f(M(P')), excess over each control, 95% CI): at P's copy {show(INTERCHANGE_COPY)}; at "
            f"H's final position {show(INTERCHANGE_FINAL)}. {mv.localisation.summary()}; the node moves the object "
            f"answer for this property at {moved}. Edit transfer ({edit_status}): {edit}. Rule: {v.reason}. The "
            f"diagnostics below (final-position patching, probes, logit lens) are shown for every model and never decide.")


def lead(result: VerdictStudy, results: StudyResults) -> list[str]:
    """The report's opening: one paragraph per (tested model, property); a model the chain could not run on says why."""
    failed = [f"{label} model {d['model']}: no verdict (INCONCLUSIVE): {d['error']}"
              for label, d in sorted(result.models.items(), key=lambda kv: kv[0] != "self") if "error" in d]
    return [paragraph(label, mv, v) for label, mv in _verdicts(result) for v in mv.verdicts] + failed


def section(result: VerdictStudy, pair: PairResult) -> list[tuple[str, Any]]:
    """The verdict table: one row per (model, property) with every evidence row's effect and CI."""
    from selfsim.verdict.run import table

    frame = pd.DataFrame(table([mv for _, mv in _verdicts(result)]))
    return [("Self-simulation verdict per model and property (docs/verdict.md; excess over control, 95% CI)", frame)]


def headline(result: VerdictStudy, results: StudyResults) -> list[dict[str, Any]]:
    """One headline row per (model, property): the verdict, with the excess at P's copy over the untrained model."""
    from selfsim.verdict.rule import INTERCHANGE_COPY, UNTRAINED

    rows = []
    for label, mv in _verdicts(result):
        for v in mv.verdicts:
            e = next((e for e in v.evidence if (e.experiment, e.control) == (INTERCHANGE_COPY, UNTRAINED)), None)
            rows.append({"quantity": f"verdict, {label} ({v.property}): {v.verdict}; interchange at P's copy over untrained",
                         "selfsim toy": e.effect if e else None, "95% CI low": e.ci_low if e else None,
                         "95% CI high": e.ci_high if e else None, "paper (Llama-3.1-70B)": None})
    return rows


def notes(result: VerdictStudy, results: StudyResults) -> list[str]:
    """Where to read the verdict's rule and validation."""
    return ["The self-simulation verdict follows the rule fixed in selfsim/verdict/rule.py before any model was measured "
            "(docs/verdict.md, with its commit and the planted-model validation); steering, copy patching, probes and the "
            "lens are diagnostics and never decide."]


register("verdict", verdict, VerdictStudy, section, headline=headline, notes=notes, lead=lead)
