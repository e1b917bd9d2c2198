"""Optimizer construction from config: parameter groups, lr multipliers, full-model clipping.

Only parameters with ``requires_grad`` enter the optimizer, so frozen diffusion / CLIP weights
never get optimizer state. Norm weights and biases get no weight decay (ODISE, VPD). Parts of the
model may train with an lr multiplier (VPD tunes the UNet at 0.1x / 0.01x); the multiplier of a
parameter is that of the longest matching name prefix in ``OPTIMIZER.LR_MULTIPLIERS``.
"""
import itertools

import torch
from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping

__all__ = ["build_optimizer", "lr_multiplier_fn", "OPTIMIZERS"]

# The optimizers a config may name (OPTIMIZER.NAME): class and its keyword arguments from cfg.
OPTIMIZERS = {
    "ADAMW": (torch.optim.AdamW, lambda cfg: {"lr": cfg.SOLVER.BASE_LR, "betas": tuple(cfg.OPTIMIZER.BETAS)}),
    "SGD": (torch.optim.SGD, lambda cfg: {"lr": cfg.SOLVER.BASE_LR, "momentum": cfg.SOLVER.MOMENTUM, "nesterov": cfg.SOLVER.NESTEROV}),
}


def _under(name: str, prefix: str) -> bool:
    """Whether parameter ``name`` is ``prefix`` itself or inside the module ``prefix``."""
    return name == prefix or name.startswith(prefix + ".")


def lr_multiplier_fn(multipliers):
    """Return ``f(param_name) -> lr factor`` for ``[(prefix, factor), ...]``; longest prefix wins."""
    table = sorted(((str(p), float(m)) for p, m in multipliers), key=lambda x: -len(x[0]))
    for prefix, factor in table:
        if factor < 0:
            raise ValueError(f"OPTIMIZER.LR_MULTIPLIERS: negative factor {factor} for '{prefix}'")

    def factor_of(name):
        for prefix, factor in table:
            if _under(name, prefix):
                return factor
        return 1.0

    return factor_of


def _with_full_model_clipping(optim_cls, max_norm):
    class FullModelGradientClipping(optim_cls):
        """Clips the global gradient norm over all parameters before each step."""

        def step(self, closure=None):
            params = itertools.chain(*[g["params"] for g in self.param_groups])
            torch.nn.utils.clip_grad_norm_(params, max_norm)
            return super().step(closure=closure)

    FullModelGradientClipping.__name__ = optim_cls.__name__ + "WithFullModelClipping"
    return FullModelGradientClipping


def build_optimizer(cfg, model):
    """Build the optimizer of ``model`` from ``cfg.OPTIMIZER`` and ``cfg.SOLVER``."""
    name = cfg.OPTIMIZER.NAME.upper()
    if name not in OPTIMIZERS:
        raise ValueError(f"OPTIMIZER.NAME '{cfg.OPTIMIZER.NAME}' is not one of {sorted(OPTIMIZERS)}")
    factor_of = lr_multiplier_fn(cfg.OPTIMIZER.LR_MULTIPLIERS)
    # A prefix that names no parameter is a typo (e.g. the FPN-wrapped "backbone.bottom_up."
    # path on a plain backbone) that would silently train that part at the full lr.
    names = [n for n, _ in model.named_parameters()]
    for prefix, _ in cfg.OPTIMIZER.LR_MULTIPLIERS:
        if not any(_under(n, prefix) for n in names):
            raise ValueError(
                f"OPTIMIZER.LR_MULTIPLIERS prefix '{prefix}' matches no parameter of "
                f"{type(model).__name__} (e.g. {names[:3]})"
            )
    overrides = {k: {"weight_decay": 0.0} for k in cfg.OPTIMIZER.NO_WEIGHT_DECAY_PARAMS}
    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
        lr_factor_func=factor_of,
        overrides=overrides,
    )
    params = [g for g in params if g["lr"] > 0 or g["params"]]
    if not params:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
    optim_cls, kwargs = OPTIMIZERS[name]
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if clip.ENABLED and clip.CLIP_TYPE == "full_model":
        return _with_full_model_clipping(optim_cls, clip.CLIP_VALUE)(params, **kwargs(cfg))
    return maybe_add_gradient_clipping(cfg, optim_cls(params, **kwargs(cfg)))
