"""Guard models: linear probes on frozen image encoders, trained with and without SafetyPairs.

- `probe`: `LinearProbe` (L2 logistic regression; safetensors weights + JSON model card).
- `experiment`: the sample-efficiency experiment (arms baseline / pairs / null_edit at matched
  budgets, several seeds), learning curves, paired comparisons, `budget_to_reach`.
- `judge`: `GuardJudge`, trained probes behind the `Judge` protocol (``kind: guard``).
- `report`: learning-curve PNG and Markdown summary.

No dagster here; scikit-learn, matplotlib and the encoders are imported inside functions.
"""
