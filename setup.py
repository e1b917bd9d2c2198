from setuptools import find_packages, setup

setup(
    name="odise-ext",
    version="0.1.0",
    description="Frozen text-to-image diffusion models as Detectron2 perception backbones "
    "(ODISE, panoptic narrative grounding, VPD / Meta-Prompts)",
    packages=find_packages(include=["odise_ext", "odise_ext.*"]),
    # key lists of the released checkpoints, each in its family's release package
    # (tools/convert_vpd_checkpoint.py)
    package_data={"odise_ext.vpd.release": ["keys/*.tsv.gz"], "odise_ext.metaprompts.release": ["keys/*.tsv.gz"]},
    python_requires=">=3.9",
    install_requires=[
        # torch/torchvision and detectron2 are installed by scripts/setup_env.sh (see docs/getting-started.md):
        # the registry has no CPU torchvision and no official detectron2 wheel.
        "numpy",
        "Pillow",
        "scipy",  # Hungarian matching (linear_sum_assignment)
        "tqdm",
        "safetensors",
        "diffusers>=0.30",  # from_single_file(original_config=...) for CompVis SD checkpoints
        "transformers>=4.40",  # CLIPTextModel: SD v1's text encoder
        "open_clip_torch>=2.24",  # batch-first transformer layout (DESIGN.md §7)
        "huggingface_hub",  # hf:// SD weights, offline-first from its cache (odise_ext/zoo/hub.py)
        "opencv-python-headless",  # detectron2's Visualizer (tools/demo.py, visualisations)
    ],
    extras_require={
        # the web demo and its browser test (Playwright drives the system Chromium; no browser
        # download). gradio 6 caps pillow < 13.
        "test": ["pytest>=7", "pytest-timeout", "gradio>=6.0,<7", "playwright>=1.40"],
        # tools/web_demo.py
        "web": ["gradio>=6.0,<7"],
        # noun-phrase extraction for datasets/prepare_coco_caption_phrases.py (tagger data: see datasets/README.md)
        "data": ["nltk"],
    },
)
