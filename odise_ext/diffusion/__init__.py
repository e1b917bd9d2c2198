"""The shared diffusion core: Stable Diffusion loading, the feature extractor (taps, refinement
loops, frozen or tuned UNet), cross-attention recording, frozen wrappers, the prompt-module
interface and the task-free prompts, and the whole-image detectron2 backbone."""
from . import prompts  # noqa: F401  (registration side effects)
from .backbone import DiffusionBackbone, build_diffusion_backbone
from .frozen import FrozenModule, freeze
from .output import BackboneOutput
from .feature_extractor import DiffusionFeatureExtractor, Extraction, Tap, alphas_cumprod, fixed_noise, parse_taps
from .sd_loading import load_sd_components, read_state_dict
from .tuned import RecordingCheckpoint, TunedModule

__all__ = [
    "FrozenModule",
    "freeze",
    "BackboneOutput",
    "DiffusionBackbone",
    "Extraction",
    "build_diffusion_backbone",
    "DiffusionFeatureExtractor",
    "RecordingCheckpoint",
    "Tap",
    "TunedModule",
    "alphas_cumprod",
    "fixed_noise",
    "load_sd_components",
    "parse_taps",
    "read_state_dict",
]
