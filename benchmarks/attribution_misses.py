"""Per-position exact vs atp vs atp* effects of resid patches at one layer (SmolLM2 layer 15, 3 countries_long pairs):
where attribution misses. Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/attribution_misses.py"""

from selfsim.interp.attribution import attribution_rows
from selfsim.interp.patching import PatchConfig, patch_rows, setups
from selfsim.models import load_subject
from selfsim.tasks import generate

s = load_subject("smollm2-135m-instruct", attn_implementation="eager")
for p in s.base.parameters():
    p.requires_grad_(False)
ex = generate("countries_long", "first_word", n=3, seed=0, dialect="paper")
cfg = PatchConfig(layers=(15,), positions="each")
setup = next(setups([s], ex, cfg))[0]
exact = patch_rows(setup, ("resid",), [15], "each", resume=True)
e = exact[exact.informative].assign(effect=lambda d: d.logit_diff - d.logit_diff_clean)
k = ["layer", "position", "pair"]
for m in ("atp", "atp*"):
    a = attribution_rows(setup, ("resid",), [15], method=m)
    e = e.merge(a[k + ["estimate"]].rename(columns={"estimate": m}), on=k)
c = e.groupby("position")[["effect", "atp", "atp*"]].mean()
print(c.reindex(c.effect.abs().sort_values(ascending=False).index).head(12).round(3).to_string())
print(c.rank().corr(method="pearson").round(3).to_string())
