"""``rl-train ot-ilfo-demos``: state-only expert demonstrations as a Minari dataset.

The registry reads one ``METHOD`` per module; the demos command lives beside the trainer in
:mod:`rl_train.methods.ot_ilfo`.
"""

from rl_train.methods.ot_ilfo import DEMOS_METHOD as METHOD

__all__ = ["METHOD"]
