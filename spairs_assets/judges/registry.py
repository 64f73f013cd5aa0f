"""Build a judge from its configuration: one entry per `JudgeConfig.kind`.

A new model is a config entry, not new code: `kind: vlm` takes any transformers VLM,
`kind: openai` any OpenAI-compatible endpoint, `kind: shieldgemma2` any ShieldGemma 2
checkpoint. The CPU judges live in `spairs_assets.judges.cpu_judges` and the model judges in
`spairs_assets.judges.model_judges`; both are imported only when a judge of theirs is built, and
building loads no weights (each judge loads its model on its first `judge()` call), so a run
whose verdicts are all cached never pays for a model.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spairs_assets.config import JudgeConfig
from spairs_assets.judges.base import Judge
from spairs_assets.policy import SafetyPolicy

# kind -> factory name in CPU_MODULE, called as factory(config, policy).
CPU_JUDGES: dict[str, str] = {
    "ocr-lexicon": "ocr_lexicon_judge",
    "ocr-embedding": "ocr_embedding_judge",
    "open-nsfw": "open_nsfw_judge",
    "pictogram": "pictogram_judge",
}
# kind -> class name in MODEL_MODULE, built with cls.from_judge_config(config, policy, ...).
MODEL_JUDGES: dict[str, str] = {
    "vlm": "VLMJudge",
    "shieldgemma2": "ShieldGemma2Judge",
    "openai": "OpenAIJudge",
}
CPU_MODULE = "spairs_assets.judges.cpu_judges"
MODEL_MODULE = "spairs_assets.judges.model_judges"
# kind -> (module, factory), called as factory(config, policy, base_dir=..., setting=...).
# "guard": trained linear probes (spairs_assets.guards.judge; `path` = probe file or folder).
OTHER_JUDGES: dict[str, tuple[str, str]] = {
    "guard": ("spairs_assets.guards.judge", "guard_judge"),
}


def judge_kinds() -> tuple[str, ...]:
    return tuple(CPU_JUDGES) + tuple(MODEL_JUDGES) + tuple(OTHER_JUDGES)


def build_judge(
    config: JudgeConfig,
    policy: SafetyPolicy,
    *,
    base_dir: str | Path | None = None,
    setting: str | None = None,
) -> Judge:
    """The judge that `config` describes.

    `base_dir` is the folder of spairs.yaml (relative model paths resolve against it);
    `setting` is where `config` sits in the configuration, for error messages (default
    `verification.judges.<name>`).
    """
    setting = setting or f"verification.judges.{config.name}"
    kind = config.kind
    if kind in MODEL_JUDGES:
        module = importlib.import_module(MODEL_MODULE)
        cls = getattr(module, MODEL_JUDGES[kind])
        kwargs: dict[str, Any] = {"setting": setting}
        if kind != "openai":
            kwargs["base_dir"] = base_dir
        return cls.from_judge_config(config, policy, **kwargs)
    if kind in OTHER_JUDGES:
        module_name, factory_name = OTHER_JUDGES[kind]
        factory = getattr(importlib.import_module(module_name), factory_name)
        return factory(config, policy, base_dir=base_dir, setting=setting)
    if kind in CPU_JUDGES:
        module = importlib.import_module(CPU_MODULE)
        factory: Callable[[JudgeConfig, SafetyPolicy], Judge] = getattr(module, CPU_JUDGES[kind])
        return factory(config, policy)
    raise ValueError(
        f"setting `{setting}.kind`: unknown judge kind {kind!r} (known: {', '.join(judge_kinds())})"
    )


def build_judges(
    configs: tuple[JudgeConfig, ...] | list[JudgeConfig],
    policy: SafetyPolicy,
    *,
    base_dir: str | Path | None = None,
    section: str = "verification.judges",
) -> dict[str, Judge]:
    """name -> judge for every configured judge, in configuration order."""
    return {
        c.name: build_judge(c, policy, base_dir=base_dir, setting=f"{section}.{c.name}")
        for c in configs
    }
