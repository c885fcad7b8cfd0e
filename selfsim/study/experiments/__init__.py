"""The study's experiments: self vs cross on every pair, then the registered ones on the primary pair.

Importing this package registers the built-in experiments; the import order below is their run order.
"""

from selfsim.study.experiments.base import EXPERIMENTS, Experiment, PairContext, register

# isort: off
from selfsim.study.experiments import scaling  # noqa: F401,E402
from selfsim.study.experiments import full_control  # noqa: F401,E402
from selfsim.study.experiments import calibration  # noqa: F401,E402
from selfsim.study.experiments import shift  # noqa: F401,E402
from selfsim.study.experiments import interp  # noqa: F401,E402
from selfsim.study.experiments import verdict  # noqa: F401,E402
# isort: on

__all__ = ["EXPERIMENTS", "Experiment", "PairContext", "register"]
