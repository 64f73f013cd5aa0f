"""Instruction adherence asked of a VLM judge, for features OCR and the pictogram detector cannot
check (an object, a gesture, a person's clothing: any `feature_kind` other than text or a
library pictogram).

The judge (a `vlm` or `openai` judge named by `verification.adherence_judge`) sees the source
and the edit, in that order, with the instruction, and answers
`{"followed": true|false, "rationale": "..."}`. As with verdicts, nothing is guessed: an answer
without that JSON, or with `followed` neither a boolean nor "yes"/"no", is recorded with its
parse status and counts as "unknown" (None), which curation does not treat as a failure.
Answers are cached per (judge, its version, prompt version, source, edit, instruction), so a
rerun asks nothing again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from PIL import Image

from spairs_assets.incremental import RunStats, run_cached
from spairs_assets.models.answers import OK, REPAIRED, extract_json_object
from spairs_assets.storage import cache_key

ADHERENCE_PROMPT_VERSION = "spairs-adherence-v1"
ASKABLE_KINDS = ("vlm", "openai")
INVALID_VALUE = "invalid_value"


def adherence_prompt(instruction: Mapping[str, Any]) -> str:
    what = instruction.get("instruction") or ""
    feature, replacement = instruction.get("feature"), instruction.get("replacement")
    change = (f'The feature "{feature}" should become "{replacement}".' if feature and replacement
              else f'The feature to change: "{feature or replacement}".')
    return (
        "The first image is an original photo; the second is the same photo after an edit.\n"
        f"The edit instruction was: {what}\n{change}\n"
        "Did the edit do what the instruction says, changing that feature and nothing else "
        "of note? Answer with JSON only, in this form:\n"
        '{"followed": true or false, "rationale": "one short sentence"}'
    )


def parse_adherence_answer(raw: str | None) -> tuple[bool | None, str, str]:
    """(followed or None, parse status, rationale) of an answer."""
    answer, status = extract_json_object(raw)
    if answer is None or status not in (OK, REPAIRED):
        return None, status, ""
    value = answer.get("followed")
    if isinstance(value, str) and value.strip().lower() in ("yes", "no", "true", "false"):
        value = value.strip().lower() in ("yes", "true")
    if not isinstance(value, bool):
        return None, INVALID_VALUE, str(answer.get("rationale") or "")
    return value, status, str(answer.get("rationale") or "")


def ask(judge: Any, source: Image.Image, edited: Image.Image, instruction: Mapping[str, Any]
        ) -> dict[str, Any]:
    """One question to the judge's model; model or endpoint failures raise (retried next run)."""
    prompt = adherence_prompt(instruction)
    if judge.kind == "vlm":
        raw = judge.model.generate([source, edited], prompt)
    elif judge.kind == "openai":
        raw = judge.client.chat(prompt, [source, edited]).text
    else:
        raise ValueError(f"judge kind {judge.kind!r} cannot be asked about adherence "
                         f"(use one of {', '.join(ASKABLE_KINDS)})")
    followed, status, rationale = parse_adherence_answer(raw)
    return {"followed": followed, "parse_status": status, "rationale": rationale, "raw": raw}


def asked_adherence(
    edits: Sequence[dict[str, Any]],
    instructions: Mapping[str, dict[str, Any]],
    judge_name: str,
    judge: Any,
    load: Callable[[str], Image.Image],
    cache: Any,
) -> tuple[dict[str, dict[str, Any]], RunStats]:
    """edit id -> the judge's answer, for `edits` (cached per item)."""
    def key(e: dict[str, Any]) -> str:
        return cache_key(stage="adherence", judge=judge.judge_id, version=judge.version,
                         prompt=ADHERENCE_PROMPT_VERSION, source=e["source_image_id"],
                         edited=e["edited_image_id"], instruction=e["instruction_id"])

    def compute(e: dict[str, Any]) -> dict[str, Any]:
        return ask(judge, load(e["source_image_id"]), load(e["edited_image_id"]),
                   instructions[e["instruction_id"]])

    outcomes, stats = run_cached(list(edits), key_of=key, compute=compute, cache=cache)
    answers = {}
    for o in outcomes:
        if o.ok:
            answers[o.item["edit_id"]] = {**o.value, "judge": judge_name}
        else:  # kept on the row as unknown; the cache has no entry, so the next run asks again
            answers[o.item["edit_id"]] = {"followed": None, "parse_status": "error",
                                          "rationale": str(o.error), "judge": judge_name}
    return answers, stats


def describe(answer: Mapping[str, Any]) -> str:
    """The row's `adherence_detail` for an asked answer."""
    head = f"asked {answer['judge']}: "
    if answer["followed"] is None:
        return head + f"no usable answer ({answer['parse_status']}) {json.dumps(answer.get('raw') or answer['rationale'])[:200]}"
    return head + ("followed" if answer["followed"] else "not followed") + (
        f" ({answer['rationale']})" if answer["rationale"] else "")
