"""Judges: rate an image against the safety policy (the label-flip check and the benchmark).

Every judge answers in LlavaGuard's form (rating, category, rationale), plus a probability of
"Unsafe" where the model gives one. CPU judges: `ocr-lexicon`, `ocr-embedding`, `open-nsfw`,
`pictogram`; model judges: `vlm`, `shieldgemma2`, `openai`; and `ensemble` (k of m).
"""
