import pytest

from spairs_assets.models.answers import extract_json_object

VERDICT = {
    "rating": "Unsafe",
    "category": "O2: Violence",
    "rationale": "A knife.",
}


@pytest.mark.parametrize(
    "text",
    [
        '{"rating": "Unsafe", "category": "O2: Violence", "rationale": "A knife."}',
        'Sure! Here is my assessment:\n{"rating": "Unsafe", "category": "O2: '
        'Violence", "rationale": "A knife."}\nLet me know if you need more.',
        '```json\n{\n  "rating": "Unsafe",\n  "category": "O2: Violence",\n'
        '  "rationale": "A knife."\n}\n```',
        '```\n{"rating": "Unsafe", "category": "O2: Violence", "rationale": "A knife."}```',
    ],
)
def test_valid_json_with_wrapping_is_ok(text):
    assert extract_json_object(text) == (VERDICT, "ok")


@pytest.mark.parametrize(
    "text",
    [
        "{'rating': 'Unsafe', 'category': 'O2: Violence', 'rationale': 'A knife.'}",
        '{"rating": "Unsafe", "category": "O2: Violence", "rationale": "A knife.",}',
        '{rating: "Unsafe", category: "O2: Violence", rationale: "A knife."}',
        "Answer: \u201c\u201d {\u201crating\u201d: \u201cUnsafe\u201d, \u201ccategory\u201d: "
        "\u201cO2: Violence\u201d, \u201crationale\u201d: \u201cA knife.\u201d}",
        "```python\n{'rating': 'Unsafe', 'category': 'O2: Violence', "
        "'rationale': 'A knife.',}\n```",
    ],
)
def test_syntax_repairs_are_reported_as_repaired(text):
    assert extract_json_object(text) == (VERDICT, "repaired")


def test_python_literals_and_nested_values():
    obj, status = extract_json_object("{'a': True, 'b': None, 'c': [1, 2,], 'd': {'e': false}}")
    assert status == "repaired"
    assert obj == {"a": True, "b": None, "c": [1, 2], "d": {"e": False}}


def test_strings_with_braces_quotes_and_apostrophes_survive():
    text = 'note {"rationale": "it\'s a {weird} \\"sign\\"", "rating": "Safe"} end'
    assert extract_json_object(text) == (
        {"rationale": 'it\'s a {weird} "sign"', "rating": "Safe"},
        "ok",
    )


def test_echoed_template_is_skipped_for_the_real_answer():
    text = (
        '{ "rating": str<"Unsafe"|"Safe">, "category": str, }\n'
        'My answer: {"rating": "Safe", "category": "NA: None applying", "rationale": "ok"}'
    )
    obj, status = extract_json_object(text)
    assert status == "ok"
    assert obj["rating"] == "Safe"


@pytest.mark.parametrize("text", ["", None, "The image is unsafe.", "[1, 2, 3]"])
def test_no_object_is_no_json(text):
    assert extract_json_object(text) == (None, "no_json")


@pytest.mark.parametrize(
    "text",
    [
        '{"rating": "Unsafe", "rationale": "The image sh',  # truncated: never completed
        '{"rating": Unsafe}',  # a bare word value is not guessed to be a string
        "{ this is not json }",
        '{"rating": }',
        "{'a': {1, 2}}",  # a Python set is not JSON
        "{'a': __import__('os')}",  # never evaluated
    ],
)
def test_unparsable_objects_are_invalid_and_nothing_is_guessed(text):
    assert extract_json_object(text) == (None, "invalid_json")


def test_first_parsable_object_wins_and_non_objects_are_ignored():
    obj, status = extract_json_object('["x"] {"a": 1} {"a": 2}')
    assert (obj, status) == ({"a": 1}, "ok")


def test_huge_garbage_does_not_blow_up():
    obj, status = extract_json_object("{" * 5000 + "x")
    assert (obj, status) == (None, "invalid_json")
