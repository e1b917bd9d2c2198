"""Keys of the frozen diffusion backbone (``MODEL.DIFFUSION.*``).

Defaults describe the real Stable Diffusion v1 architecture and ODISE's settings; tiny test
architectures override the ``*_CONFIG`` nodes (see ``configs/testing/base_tiny_diffusion.yaml``).
"""
from detectron2.config import CfgNode as CN

# ODISE's eight taps, in the order of ODISE's ``feature_projections.{i}``:
# VAE encoder down[2].block[1] / down[3].block[1], UNet output_blocks[2|5|8|11] (after the skip
# concatenation), VAE decoder up[3].block[2] / up[2].block[2] (ldm numbers the decoder in reverse).
_ODISE_TAPS = [
    "vae.encoder.down_blocks.2.resnets.1:input",
    "vae.encoder.down_blocks.3.resnets.1:input",
    "unet.up_blocks.0.resnets.2:input",
    "unet.up_blocks.1.resnets.2:input",
    "unet.up_blocks.2.resnets.2:input",
    "unet.up_blocks.3.resnets.2:input",
    "vae.decoder.up_blocks.0.resnets.2:input",
    "vae.decoder.up_blocks.1.resnets.2:input",
]
_ODISE_TAP_STRIDES = [4, 8, 32, 32, 16, 8, 8, 4]


def add_diffusion_config(cfg):
    """Add ``MODEL.DIFFUSION`` to ``cfg`` (in place)."""
    _C = cfg
    _C.MODEL.DIFFUSION = CN()
    d = _C.MODEL.DIFFUSION
    # Stable Diffusion weights: a local diffusers folder (unet/, vae/, text_encoder/), a single-file
    # original checkpoint (.ckpt/.safetensors, CompVis naming), or "random" (random init from the
    # *_CONFIG architectures below). Empty is an error, so a real run never silently uses noise.
    d.WEIGHTS = ""
    # Seed of the random initialisation used when WEIGHTS == "random" (so frozen random weights can
    # be re-created exactly, since they are never written into checkpoints).
    d.RANDOM_INIT_SEED = 0
    # dtype of the frozen modules (VAE, UNet, text encoder): "float32", "bfloat16" or "float16".
    # Trainable modules always stay float32; tap features are returned as float32.
    d.DTYPE = "float32"
    # Denoising timestep the UNet runs at (ODISE/VPD-paper: 0, PNG/EIPA and VPD-code: 1).
    d.TIMESTEP = 0
    # Whether the fixed noise is added to the latent at TIMESTEP (ODISE: yes; VPD: no).
    d.ADD_NOISE = True
    # Seed of the fixed noise tensor (ODISE: torch.randn(1,4,64,64) with seed 42).
    d.NOISE_SEED = 42
    # Spatial size of the fixed noise tensor; it is bicubically resized to other latent sizes.
    d.NOISE_LATENT_SIZE = 64
    # Noise schedule of SD v1 ("scaled_linear": betas = linspace(sqrt(start), sqrt(end), T) ** 2).
    d.BETA_START = 0.00085
    # Last beta of the schedule.
    d.BETA_END = 0.012
    # Number of training timesteps of the schedule.
    d.NUM_TRAIN_TIMESTEPS = 1000
    # Multiply the posterior mean by the VAE scaling factor (ODISE: yes, 0.18215; VPD: no).
    d.SCALE_LATENT = True
    # What the VAE decoder decodes when it is tapped: "latent" (the posterior mean; ODISE's and
    # VPD's taps never reach it) or "unet_output" (the latent the UNet predicts, as PNG's 1/4 mask
    # features; the UNet then runs to its end).
    d.VAE_DECODER_INPUT = "latent"
    # Feature taps: "<component>.<module path>:<input|output>", component "unet" or "vae".
    d.TAPS = list(_ODISE_TAPS)
    # Output stride of each tap (relative to the input image); same length as TAPS.
    d.TAP_STRIDES = list(_ODISE_TAP_STRIDES)
    # WindowedDiffusionBackbone (ODISE): side of the sliding windows (min(WINDOW_SIZE, H, W)) and
    # the size windows are resized to. DiffusionBackbone runs whole images and ignores it.
    d.WINDOW_SIZE = 512
    # Feature maps returned by the backbone (subset of res2..res5 produced by TAP_STRIDES).
    d.OUT_FEATURES = ["res2", "res3", "res4", "res5"]

    # "frozen": the UNet is a FrozenModule (no weight gradients, not checkpointed); "tuned": the
    # UNet trains (lr factor via OPTIMIZER.LR_MULTIPLIERS on "<path>.feature_extractor.unet") and
    # its weights are saved in checkpoints (VPDBackbone only). VPD / Meta-Prompts tune it (0.1 seg,
    # 0.01 depth).
    d.UNET_MODE = "frozen"
    # Activation checkpointing of a tuned UNet's resnets / transformer blocks while gradients flow.
    d.GRADIENT_CHECKPOINTING = True

    # Recurrent refinement (Meta-Prompts; VPDBackbone only).
    d.REFINE = CN()
    # Number of UNet passes; between passes the stride-8 output goes through the UNet's own output
    # head (norm, act, conv_out) and is the next latent.
    d.REFINE.LOOPS = 1
    # Replace the UNet time-embedding MLP output by a learnable vector per pass (Meta-Prompts).
    d.REFINE.LOOP_TIME_EMBED = False

    # Per-tap bottleneck projections (ODISE: detectron2 BottleneckBlock, GN, 128 -> 512).
    d.PROJECTION = CN()
    # Bottleneck width of each projection block.
    d.PROJECTION.BOTTLENECK_CHANNELS = 128
    # Output channels of every res level.
    d.PROJECTION.OUT_CHANNELS = 512
    # Norm of the projection blocks (detectron2 get_norm name).
    d.PROJECTION.NORM = "GN"

    # What goes into the UNet's cross-attention.
    d.PROMPT = CN()
    # Name in PROMPT_REGISTRY: "EmptyPrompt" or "ImplicitCaptioner".
    d.PROMPT.NAME = "ImplicitCaptioner"

    # diffusers UNet2DConditionModel architecture (used for "random" and single-file weights; a
    # diffusers folder brings its own config.json). Defaults: SD v1.
    d.UNET_CONFIG = CN()
    # Latent channels in.
    d.UNET_CONFIG.IN_CHANNELS = 4
    # Latent channels out.
    d.UNET_CONFIG.OUT_CHANNELS = 4
    # Nominal latent size (only recorded in the diffusers config).
    d.UNET_CONFIG.SAMPLE_SIZE = 64
    # Channels of each resolution level.
    d.UNET_CONFIG.BLOCK_OUT_CHANNELS = [320, 640, 1280, 1280]
    # Resnets per down block (up blocks have one more).
    d.UNET_CONFIG.LAYERS_PER_BLOCK = 2
    # diffusers down block classes.
    d.UNET_CONFIG.DOWN_BLOCK_TYPES = [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ]
    # diffusers up block classes.
    d.UNET_CONFIG.UP_BLOCK_TYPES = [
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ]
    # Width of the cross-attention context (text encoder hidden size).
    d.UNET_CONFIG.CROSS_ATTENTION_DIM = 768
    # diffusers' "attention_head_dim"; for SD v1 it is in fact the number of heads (8).
    d.UNET_CONFIG.ATTENTION_HEAD_DIM = 8
    # GroupNorm groups.
    d.UNET_CONFIG.NORM_NUM_GROUPS = 32

    # diffusers AutoencoderKL architecture. Defaults: SD v1 VAE.
    d.VAE_CONFIG = CN()
    # Image channels in.
    d.VAE_CONFIG.IN_CHANNELS = 3
    # Image channels out.
    d.VAE_CONFIG.OUT_CHANNELS = 3
    # Latent channels.
    d.VAE_CONFIG.LATENT_CHANNELS = 4
    # Channels of each encoder/decoder level.
    d.VAE_CONFIG.BLOCK_OUT_CHANNELS = [128, 256, 512, 512]
    # Resnets per encoder block (decoder blocks have one more).
    d.VAE_CONFIG.LAYERS_PER_BLOCK = 2
    # GroupNorm groups.
    d.VAE_CONFIG.NORM_NUM_GROUPS = 32
    # Nominal image size (only recorded in the diffusers config).
    d.VAE_CONFIG.SAMPLE_SIZE = 512
    # Latent scaling factor (SD v1: 0.18215).
    d.VAE_CONFIG.SCALING_FACTOR = 0.18215

    # transformers CLIPTextModel architecture of SD's text encoder. Defaults: CLIP ViT-L/14 text.
    d.TEXT_ENCODER_CONFIG = CN()
    # Vocabulary size (the CLIP BPE vocabulary has 49408 tokens).
    d.TEXT_ENCODER_CONFIG.VOCAB_SIZE = 49408
    # Hidden width (= UNet cross-attention dim).
    d.TEXT_ENCODER_CONFIG.HIDDEN_SIZE = 768
    # MLP width.
    d.TEXT_ENCODER_CONFIG.INTERMEDIATE_SIZE = 3072
    # Transformer layers.
    d.TEXT_ENCODER_CONFIG.NUM_HIDDEN_LAYERS = 12
    # Attention heads.
    d.TEXT_ENCODER_CONFIG.NUM_ATTENTION_HEADS = 12
    # Context length.
    d.TEXT_ENCODER_CONFIG.MAX_POSITION_EMBEDDINGS = 77
    # Activation (OpenAI CLIP: quick_gelu).
    d.TEXT_ENCODER_CONFIG.HIDDEN_ACT = "quick_gelu"
