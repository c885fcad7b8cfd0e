"""The self-simulation verdict: decision rule (`rule`), localisation of g (`localise`), interventions on g
(`interchange`, `edit`), the chain (`run`), planted ground-truth models (`planted`).

`from selfsim.verdict import Evidence, decide, verdicts` keeps working: the rule's names are re-exported.
"""

from selfsim.verdict.rule import (
    CONFIDENCE,
    CONTROLS,
    DIAGNOSTICS,
    EDIT_DRIFT,
    EDIT_OBJECT,
    EDIT_RETAINED,
    EDIT_TRANSFER,
    EDIT_TRANSFER_VALIDATED,
    INTERCHANGE,
    INTERCHANGE_COPY,
    INTERCHANGE_FINAL,
    INTERCHANGE_INPUT,
    INTERCHANGE_OBJECT,
    INTERCHANGE_OBJECT_COPY,
    INTERCHANGE_OBJECT_FINAL,
    INTERCHANGE_SITES,
    MAX_DRIFT,
    MAX_INPUT_CARRY,
    MIN_MOVE,
    MIN_N,
    MIN_RETAINED,
    N_BOOT,
    NONE,
    PATCHING,
    RANDOM,
    REJECT,
    SITE_GATES,
    STEERING,
    STEERING_OBJECT,
    SUPPORT,
    TESTS,
    TRANSPLANT,
    UNTRAINED,
    VERDICTS,
    Evidence,
    Verdict,
    bootstrap_ci,
    decide,
    decisive_tests,
    excess,
    rate,
    verdicts,
)

__all__ = [
    "CONFIDENCE", "CONTROLS", "DIAGNOSTICS", "EDIT_DRIFT", "EDIT_OBJECT", "EDIT_RETAINED", "EDIT_TRANSFER",
    "EDIT_TRANSFER_VALIDATED", "INTERCHANGE", "INTERCHANGE_COPY", "INTERCHANGE_FINAL", "INTERCHANGE_INPUT", "INTERCHANGE_OBJECT", "INTERCHANGE_OBJECT_COPY", "INTERCHANGE_OBJECT_FINAL",
    "INTERCHANGE_SITES", "MAX_DRIFT", "MAX_INPUT_CARRY", "MIN_MOVE", "MIN_N", "MIN_RETAINED", "N_BOOT", "NONE", "PATCHING", "RANDOM",
    "REJECT", "SITE_GATES", "STEERING", "STEERING_OBJECT", "SUPPORT", "TESTS", "TRANSPLANT", "UNTRAINED", "VERDICTS", "Evidence",
    "Verdict", "bootstrap_ci", "decide", "decisive_tests", "excess", "rate", "verdicts",
]
