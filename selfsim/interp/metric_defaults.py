"""Which patching metrics run, rank and drive attribution when none are named (torch-free: the CLI's help reads it)."""

DEFAULT_METRICS = ("logit_diff", "prob_donor", "flip")
DEFAULT_RANK_BY = "flip"
ATTRIBUTION_METRIC = "logit_diff"
