"""Config set-up for zoo names: the base weights a zoo entry needs, filled where empty."""
__all__ = ["fill_zoo_base_weights"]


def fill_zoo_base_weights(cfg) -> None:
    """If ``cfg.MODEL.WEIGHTS`` is a zoo name, set ``MODEL.DIFFUSION.WEIGHTS`` / ``MODEL.CLIP.WEIGHTS``
    to the entry's base weights where they are empty (an explicit value is kept). An unknown zoo
    name is a ``KeyError`` listing the known ones, before anything is built. ``cfg`` is unfrozen."""
    from .catalog import get_entry, is_zoo_uri

    if not is_zoo_uri(cfg.MODEL.WEIGHTS):
        return
    entry = get_entry(cfg.MODEL.WEIGHTS)
    if not cfg.MODEL.DIFFUSION.WEIGHTS:
        cfg.MODEL.DIFFUSION.WEIGHTS = entry.diffusion_weights
    if entry.clip_weights and "CLIP" in cfg.MODEL and not cfg.MODEL.CLIP.WEIGHTS:
        cfg.MODEL.CLIP.WEIGHTS = entry.clip_weights
