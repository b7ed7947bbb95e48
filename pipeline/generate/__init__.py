"""Generation stages of DiffVERI: subjects import, tiny offline diffusion models, DreamBooth (LoRA) per identity,
and multi-view synthesis with swappable backends (``diffusion`` and ``toyworld``).

Heavy libraries (torch, diffusers, peft, accelerate) are imported inside the modules that need them, so importing
this package stays cheap.
"""
