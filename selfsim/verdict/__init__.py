"""The self-simulation verdict: decision rule (`rule`), planted ground-truth models (`planted`).

`from selfsim.verdict import Evidence, decide, verdicts` keeps working: the rule's names are re-exported.
"""

from selfsim.verdict.rule import (
    CONFIDENCE,
    DECISIVE,
    MARGIN,
    MIN_N,
    MIN_OBJECT_SHIFT,
    N_BOOT,
    PATCHING,
    POWER_CHECK,
    RANDOM,
    STEERING,
    STEERING_OBJECT,
    TRANSPLANT,
    UNTRAINED,
    VERDICTS,
    Evidence,
    Verdict,
    bootstrap_ci,
    decide,
    verdicts,
)

__all__ = [
    "CONFIDENCE", "DECISIVE", "MARGIN", "MIN_N", "MIN_OBJECT_SHIFT", "N_BOOT", "PATCHING", "POWER_CHECK", "RANDOM",
    "STEERING", "STEERING_OBJECT", "TRANSPLANT", "UNTRAINED", "VERDICTS", "Evidence", "Verdict", "bootstrap_ci",
    "decide", "verdicts",
]
