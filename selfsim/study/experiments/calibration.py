"""SPEC experiment 3: calibration of T=1 hypothetical samples against M1ft's T=1 object samples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from selfsim.report import fig_calibration
from selfsim.results import PairResult, StudyResults
from selfsim.study.experiments.base import PairContext, register
from selfsim.study.stages import model_dir


@dataclass(frozen=True)
class Calibration:
    """`selfsim.evaluate.CalibrationResult.to_dict()` per condition (object samples from M1ft)."""

    untrained: dict[str, Any]
    self_trained: dict[str, Any]
    cross_trained: dict[str, Any]

    def conditions(self) -> dict[str, dict[str, Any]]:
        """The report's label of each condition -> its calibration."""
        return {"untrained": self.untrained, "self": self.self_trained, "cross": self.cross_trained}


def calibration(ctx: PairContext) -> Calibration:
    """T=1 object samples of the self-trained M1 (whose behaviour is predicted) vs T=1 hypothetical samples of each model."""
    from selfsim.evaluate import calibration as calibrate

    st, examples, ad = ctx.stages, ctx.examples["calibration"], ctx.adapters
    obj = st.samples(f"{ctx.key}/self-object", ctx.m1, examples, meta=False, adapter=ad["self"]).long(samples=True)
    result = {}
    for field, cond, (model, adapter) in (("untrained", "untrained", (ctx.m1, None)), ("self_trained", "self", (ctx.m1, ad["self"])),
                                          ("cross_trained", "cross", (ctx.m2, ad["cross"]))):
        key = f"{ctx.key}/{cond}" if adapter else model_dir(model)
        meta = st.samples(key, model, examples, meta=True, adapter=adapter).long(samples=True)
        meta = meta.rename(columns={"answer": "value"})
        result[field] = calibrate(obj[["object_id", "value", "sample"]], meta[["object_id", "value", "sample"]]).to_dict()
    return Calibration(**result)


def section(result: Calibration, pair: PairResult) -> list[tuple[str, Any]]:
    """Calibration curves of each condition."""
    from selfsim.evaluate import CalibrationResult

    return [("Calibration (object-level samples from the self-trained M1)",
             fig_calibration({k: CalibrationResult.from_dict(v) for k, v in result.conditions().items()}))]


def headline(result: Calibration, results: StudyResults) -> list[dict[str, Any]]:
    """The mean absolute calibration deviation of each condition."""
    return [{"quantity": f"calibration MAD, {cond} (x100)", "selfsim toy": value["mad"]}
            for cond, value in result.conditions().items()]


register("calibration", calibration, Calibration, section, headline=headline)
