"""Stage 3, editing: apply each instruction to its seed, with n candidates per instruction.

Backends (chosen by `editing.editor` in spairs.yaml):
- `classical` (CPU default): OCR/template-matching localisation, OpenCV inpainting, re-rendering.
- `flux-kontext`, `qwen-image-edit`, `instruct-pix2pix`: diffusers pipelines on a GPU.
"""
