from detectron2.config import CfgNode as CN


def add_speed_config(cfg):
    """Switches of the fast paths (namespace ``MODEL.SPEED``); each leaves the results unchanged
    up to floating-point rounding, and each is measured by ``tools/benchmark.py --suite``."""
    cfg.MODEL.SPEED = CN()
    # PyTorch scaled_dot_product_attention (flash / memory-efficient kernels) in the SD UNet and
    # VAE (diffusers AttnProcessor2_0) and in MaskCLIP's masked attention (a boolean mask, no
    # float bias); False runs the explicit softmax(QK^T)V reference paths. open_clip's CLIP
    # towers use SDPA through nn.MultiheadAttention either way.
    cfg.MODEL.SPEED.SDPA = True
    # torch.compile backend for the blocks of the frozen UNet, VAE and CLIP towers ("" = off,
    # "inductor" for speed on a GPU, "eager" to test the tracing). Shapes are fixed per input
    # size, so each new image size compiles once.
    cfg.MODEL.SPEED.COMPILE = ""
    # Keep the UNet and VAE weights in channels_last memory format (faster convolutions on
    # tensor-core GPUs; inputs are converted by the convolutions themselves).
    cfg.MODEL.SPEED.CHANNELS_LAST = False
