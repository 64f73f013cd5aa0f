"""Stage 2, instructions: for each seed, edits that would flip its safety label minimally.

Backends (chosen by `instructions.generator` in spairs.yaml):
- `grounded` (CPU default): OCR + policy lexicon for text, template matching for pictograms.
- `vlm`: a transformers image-text-to-text model with the policy prompt.
- `openai`: any OpenAI-compatible chat endpoint.
"""
