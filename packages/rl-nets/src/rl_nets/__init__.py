"""Network blocks for RL: MLPs (dense layers on the fastest correct CPU GEMM path), pixel encoder, AvgL1Norm, SimNorm, two-hot/symlog, Q-ensembles,
random-shift augmentation, target-network updates and initialisation.

The names below are imported from their module on first use (PEP 562), so that a config that
names an activation (:data:`ActivationName`) imports without torch.
"""

import importlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rl_nets.activations import ACTIVATION_NAMES, ActivationName, make_activation
    from rl_nets.augment import random_shift, sample_shifts, shift_images
    from rl_nets.encoders import PixelEncoder, conv_output_size
    from rl_nets.ensemble import (
        EnsembleLayerNorm,
        EnsembleLinear,
        EnsembleMLP,
        EnsembleReduction,
        random_members,
        reduce_ensemble,
    )
    from rl_nets.gemm import (
        GEMM_PATHS,
        FastLinear,
        GemmPath,
        GemmPlan,
        gemm_decisions,
        gemm_path,
        linear,
        machine_report,
        onednn_available,
        set_gemm_path,
        use_gemm_path,
    )
    from rl_nets.initialization import RELU_GAIN, InitScheme, init_weights
    from rl_nets.mlp import MLP, LayerNormPlacement
    from rl_nets.norms import AvgL1Norm, SimNorm, avg_l1_norm, simnorm
    from rl_nets.targets import (
        BufferUpdate,
        TargetMismatchError,
        check_target_matches,
        frozen_copy,
        hard_update,
        soft_update,
    )
    from rl_nets.twohot import TwoHot, TwoHotInterpolation, symexp, symlog

__version__ = "0.1.0"

__all__ = [
    "ACTIVATION_NAMES",
    "GEMM_PATHS",
    "MLP",
    "RELU_GAIN",
    "ActivationName",
    "AvgL1Norm",
    "BufferUpdate",
    "EnsembleLayerNorm",
    "EnsembleLinear",
    "EnsembleMLP",
    "EnsembleReduction",
    "FastLinear",
    "GemmPath",
    "GemmPlan",
    "InitScheme",
    "LayerNormPlacement",
    "PixelEncoder",
    "SimNorm",
    "TargetMismatchError",
    "TwoHot",
    "TwoHotInterpolation",
    "avg_l1_norm",
    "check_target_matches",
    "conv_output_size",
    "frozen_copy",
    "gemm_decisions",
    "gemm_path",
    "hard_update",
    "init_weights",
    "linear",
    "machine_report",
    "make_activation",
    "onednn_available",
    "random_members",
    "random_shift",
    "reduce_ensemble",
    "sample_shifts",
    "set_gemm_path",
    "shift_images",
    "simnorm",
    "soft_update",
    "symexp",
    "symlog",
    "use_gemm_path",
]

_EXPORTS: dict[str, tuple[str, ...]] = {
    "rl_nets.activations": ("ACTIVATION_NAMES", "ActivationName", "make_activation"),
    "rl_nets.augment": ("random_shift", "sample_shifts", "shift_images"),
    "rl_nets.encoders": ("PixelEncoder", "conv_output_size"),
    "rl_nets.ensemble": (
        "EnsembleLayerNorm",
        "EnsembleLinear",
        "EnsembleMLP",
        "EnsembleReduction",
        "random_members",
        "reduce_ensemble",
    ),
    "rl_nets.gemm": (
        "GEMM_PATHS",
        "FastLinear",
        "GemmPath",
        "GemmPlan",
        "gemm_decisions",
        "gemm_path",
        "linear",
        "machine_report",
        "onednn_available",
        "set_gemm_path",
        "use_gemm_path",
    ),
    "rl_nets.initialization": ("RELU_GAIN", "InitScheme", "init_weights"),
    "rl_nets.mlp": ("MLP", "LayerNormPlacement"),
    "rl_nets.norms": ("AvgL1Norm", "SimNorm", "avg_l1_norm", "simnorm"),
    "rl_nets.targets": (
        "BufferUpdate",
        "TargetMismatchError",
        "check_target_matches",
        "frozen_copy",
        "hard_update",
        "soft_update",
    ),
    "rl_nets.twohot": ("TwoHot", "TwoHotInterpolation", "symexp", "symlog"),
}
"""Submodule -> the names it provides to the package."""

_HOME = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> object:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*vars(sys.modules[__name__]), *_HOME})
