"""Model loading and inference shared by instruction generators, editors, judges and encoders.

Everything here imports torch/transformers/diffusers lazily, inside functions.
"""
