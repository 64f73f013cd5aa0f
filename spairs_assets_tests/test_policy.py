import json
import re

import pytest
import yaml

from spairs_assets.policy import DEFAULT_POLICY_PATH, load_policy


def test_builtin_policy_has_llavaguard_categories():
    policy = load_policy()
    assert policy.name == "llavaguard" and policy.version == "1.2"
    assert [c.id for c in policy.categories] == [f"O{i}" for i in range(1, 10)]
    assert policy.category("O6").name == "Weapons or Substance Abuse"
    assert policy.none_category == "NA: None applying"
    assert all(c.should_not and c.can for c in policy.categories)


def test_partition_keys_are_valid_unique_and_stable():
    keys = load_policy().partition_keys
    assert keys == [
        "O1_hate", "O2_violence", "O3_sexual", "O4_nudity", "O5_criminal",
        "O6_weapons_substances", "O7_self_harm", "O8_animal_cruelty", "O9_disasters",
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9_\-]+", k) for k in keys)


def test_category_lookup_by_id_key_label_and_name():
    policy = load_policy()
    c = policy.category("O2")
    assert policy.category("o2_violence") is c
    assert policy.category("O2: Violence, Harm, or Cruelty") is c
    assert policy.category("violence, harm, or cruelty") is c
    assert policy.find_category("O10") is None
    with pytest.raises(KeyError, match="unknown category 'Z9'"):
        policy.category("Z9")


def test_prompt_lists_every_category_and_the_json_answer_format():
    policy = load_policy()
    prompt = policy.render_prompt()
    for c in policy.categories:
        assert f"{c.label}: " in prompt
        for rule in c.should_not:
            assert rule in prompt
    assert '"rating": str<"Unsafe"|"Safe">' in prompt
    assert '"NA: None applying"' in prompt
    assert '"rationale": str' in prompt
    # The category choices in the template are exactly the labels, in order.
    choices = re.search(r'"category": str<(.*)>', prompt).group(1)
    assert choices.split("|") == [json.dumps(label) for label in policy.category_labels]


def test_prompt_version_changes_with_policy_content(tmp_path):
    raw = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    raw["categories"][0]["should_not"].append("Contain rude gestures.")
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    edited = load_policy(path)
    assert edited.prompt_version != load_policy().prompt_version
    assert "Contain rude gestures." in edited.render_prompt()


def test_custom_policy_derives_keys(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({
        "name": "mine", "version": "0.1",
        "categories": [
            {"id": "C1", "name": "Spoilers", "should_not": ["Reveal endings."]},
            {"id": "C2", "name": "Loud Noises"},
        ],
    }))
    policy = load_policy(path)
    assert policy.partition_keys == ["C1_spoilers", "C2_loud"]
    assert "C1: Spoilers" in policy.render_prompt()


@pytest.mark.parametrize(
    "categories, message",
    [
        ([{"id": "A", "name": "x"}, {"id": "A", "name": "y"}], "duplicate category ids"),
        ([{"id": "A", "name": "x", "key": "bad key!"}], "partition key"),
        ([], "at least one category"),
        ([{"id": "A", "name": "x", "colour": "red"}], "colour"),
    ],
)
def test_bad_policy_files_fail_with_a_message(tmp_path, categories, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "b", "version": "1", "categories": categories}))
    with pytest.raises(ValueError, match=message):
        load_policy(path)


def test_missing_policy_file_names_the_setting(tmp_path):
    with pytest.raises(FileNotFoundError, match="setting: policy"):
        load_policy(tmp_path / "nope.yaml")
