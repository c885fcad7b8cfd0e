"""Interpretability side by side on untrained, self- and cross-trained models: patching, probes, logit lens."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from selfsim.io import read_json, write_json
from selfsim.report import write_figure
from selfsim.results import StudyResults
from selfsim.study.experiments.base import PairContext, register


@dataclass(frozen=True)
class Interp:
    """Patching summary and logit-lens records (figures are in the run's figures/)."""

    patching: Any
    lens: Any


def interp(ctx: PairContext) -> Interp:
    """Patching (object -> hypothetical, final position, by layer and component), probes and logit lens
    on held-out-task first_word prompts; figures go to figures/."""
    from selfsim.interp.lens import lens_figure, lens_study
    from selfsim.interp.patching import PatchConfig, PatchResult, heatmap, run_patching
    from selfsim.interp.probes import probe_figure, run_probes
    from selfsim.models import load_subject

    c, st, a, b, adapters = ctx.config, ctx.stages, ctx.m1, ctx.m2, ctx.adapters
    out = st.out / "interp"
    chosen = [e for e in ctx.examples["eval_ood"] if e.property == "first_word"][: c.interp_prompts]
    m1 = ctx.beh_m1.responses()

    def subjects() -> dict[str, Any]:
        opts = {"dtype": c.dtype, "device_map": c.device_map}
        return {"untrained": load_subject(a, **opts), "self": load_subject(a, adapter=adapters["self"], **opts),
                "cross": load_subject(b, adapter=adapters["cross"], **opts)}

    def patching() -> None:
        config = PatchConfig(components=("resid", "attn", "mlp"), positions="final", backend="hooks", seed=c.seed)
        parts = [run_patching(group, chosen, replace(config, layers=layers), labels=m1) for group, layers in by_depth(c, subjects())]
        result = parts[0] if len(parts) == 1 else PatchResult(
            rows=pd.concat([r.rows for r in parts], ignore_index=True),
            answers=pd.concat([r.answers for r in parts], ignore_index=True), config=config)
        result.save(out / "patching")
        figure = heatmap(result.summary(), metric=config.rank_column, direction="object->hypothetical", component="resid")
        write_figure(st.out, "patching_flip_rate_resid", figure)

    def probes() -> None:
        groups = by_depth(c, subjects())
        parts = [run_probes(group, chosen, out / "probes" / ("" if len(groups) == 1 else "_".join(group)), layers=layers,
                            m1_responses=m1, progress=False) for group, layers in groups]
        results = pd.concat(parts, ignore_index=True)
        if len(groups) > 1:
            write_json(out / "probes" / "results.json", results.astype(object).where(results.notna(), None).to_dict("records"))
        write_figure(st.out, "probes_by_layer", probe_figure(results))

    def lens() -> None:
        tokens = [str(m1.get(e.object_id) or "").split()[0] if m1.get(e.object_id) else None for e in chosen]
        results = pd.concat([lens_study(group, chosen, m1_first_tokens=tokens, layers=layers)
                             for group, layers in by_depth(c, subjects())], ignore_index=True)
        results.to_json(out / "lens.json", orient="records", indent=1)
        write_figure(st.out, "logit_lens", lens_figure(results))

    st.stage("interp patching", out / "patching" / "summary.json", patching)
    st.stage("interp probes", out / "probes" / "results.json", probes)
    st.stage("interp lens", out / "lens.json", lens)
    return Interp(patching=read_json(out / "patching" / "summary.json"), lens=read_json(out / "lens.json"))


def by_depth(config: Any, subjects: dict[str, Any]) -> list[tuple[dict[str, Any], list[int] | None]]:
    """Subjects grouped by depth, each group with its layers (`StudyConfig.layers_for`): models of another depth
    (another family) are opened at their own layers."""
    groups: dict[int, dict[str, Any]] = {}
    for label, subject in subjects.items():
        groups.setdefault(subject.n_layers, {})[label] = subject
    return [(group, config.layers_for(n)) for n, group in groups.items()]


def notes(result: Interp, results: StudyResults) -> list[str]:
    """Why the final-position patching figure is not evidence either way."""
    return [
        "The patching figure (object run on P' into the hypothetical run on H(P), final position) is shown for the "
        "untrained model too: at that position the object run already holds the answer token, so any model follows "
        "the patch. It cannot tell self-simulation from a transplanted answer and is not evidence for either. The "
        "self-simulation verdict (the report's opening paragraphs) rests on interventions on g, never on this figure."
    ]


register("interp", interp, Interp, notes=notes)
