"""SPEC experiment 3: calibration of T=1 hypothetical samples against M1ft's T=1 object samples."""

from __future__ import annotations

from selfsim.results import Calibration
from selfsim.study.experiments.base import PairContext, register
from selfsim.study.stages import model_dir


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


register("calibration", calibration)
