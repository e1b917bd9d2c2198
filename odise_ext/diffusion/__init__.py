"""The shared diffusion core: Stable Diffusion loading, the feature extractor, cross-attention
recording, frozen wrappers, prompt modules, the CLIP wrapper and the detectron2 backbone."""
from . import clip, prompts  # noqa: F401  (registration side effects)
from .backbone import DiffusionBackbone, WindowedDiffusionBackbone, build_diffusion_backbone
from .frozen import FrozenModule, freeze
from .output import BackboneOutput
from .feature_extractor import DiffusionFeatureExtractor, Extraction, Tap, alphas_cumprod, fixed_noise, parse_taps
from .sd_loading import load_sd_components, read_state_dict
from .windows import cut_windows, merge_windows, window_boxes

__all__ = [
    "FrozenModule",
    "freeze",
    "BackboneOutput",
    "DiffusionBackbone",
    "WindowedDiffusionBackbone",
    "Extraction",
    "build_diffusion_backbone",
    "DiffusionFeatureExtractor",
    "Tap",
    "alphas_cumprod",
    "cut_windows",
    "fixed_noise",
    "load_sd_components",
    "merge_windows",
    "parse_taps",
    "read_state_dict",
    "window_boxes",
]
