"""Stage 4, verification: is an edit candidate a minimal, targeted change?

- `metrics`: pixel-level edit-minimality metrics between a source image and its edited twin
  (SSIM that agrees with scikit-image, PSNR, L1/L2, changed-pixel fraction and region, change
  outside the edited region, perceptual-hash distances), fast enough for hundreds of pairs a
  second on a laptop CPU.

Nothing here imports dagster; model backends (judges, encoders) live in their own packages.
"""
