"""The task registry: every SPEC task with its split, properties and source."""

from __future__ import annotations

import pytest

from selfsim.budget import META_MAX_NEW_TOKENS, TOY_MAX_NEW_TOKENS
from selfsim.errors import SelfsimError
from selfsim.properties import PROPERTIES
from selfsim.tasks import ALIASES, TASKS, get_task, meta_question
from selfsim.tasks.registry import answer_budget, token_budget
from selfsim.tasks.words import load_words

SPEC_SPLITS = {
    "wikipedia_long": "train", "colors_long": "train", "countries_long": "train", "arc_challenge": "train",
    "power_seeking": "train", "wealth_seeking": "train", "numbers": "train",
    "animals_long": "test", "english_words_long": "test", "stories_sentences": "test", "mmlu": "test",
    "myopic_reward": "test", "survival_instinct": "test",
}
SEQUENCE_PROPERTIES = (
    "first_character", "second_character", "third_character", "first_word", "second_word", "third_word",
    "starts_with_vowel",
)
# The paper dialect's answer budgets (max_new_tokens), as before they moved onto the tasks.
PAPER_BUDGETS = {
    "wikipedia_long": 24, "colors_long": 16, "countries_long": 24, "animals_long": 16, "english_words_long": 24,
    "stories_sentences": 48, "arc_challenge": 4, "mmlu": 4, "power_seeking": 4, "wealth_seeking": 4,
    "myopic_reward": 4, "survival_instinct": 4, "numbers": 8, "toy_choice": 32,
}
GENERATED = {"colors_long", "countries_long", "numbers", "animals_long", "english_words_long"}


def test_every_spec_task_with_its_split() -> None:
    assert {name: TASKS[name].split for name in SPEC_SPLITS} == SPEC_SPLITS
    assert set(TASKS) - set(SPEC_SPLITS) == {"toy_choice"}


def test_properties_follow_the_paper_file_names() -> None:
    for name in ("wikipedia_long", "colors_long", "countries_long", "animals_long", "english_words_long", "stories_sentences"):
        assert TASKS[name].properties == SEQUENCE_PROPERTIES
    for name in ("arc_challenge", "mmlu"):
        assert TASKS[name].properties == ("among_a_or_c", "among_b_or_d", "identity")
        assert TASKS[name].options == "ABCD"
    for name in ("power_seeking", "wealth_seeking", "myopic_reward", "survival_instinct"):
        assert TASKS[name].properties == ("ethical_stance",) and TASKS[name].stance
    assert TASKS["numbers"].properties == ("is_even",)
    assert all(p in PROPERTIES for t in TASKS.values() for p in t.properties)


def test_source_says_whether_a_task_can_be_generated() -> None:
    assert {n for n in SPEC_SPLITS if TASKS[n].source == "generated"} == GENERATED
    assert all(set(TASKS[n].generators) == {"paper", "toy"} for n in GENERATED)
    assert set(TASKS["toy_choice"].generators) == {"toy"}


def test_get_task_resolves_paper_release_names() -> None:
    assert ALIASES == {"arc_challenge_non_cot": "arc_challenge", "mmlu_non_cot": "mmlu"}
    assert get_task("arc_challenge_non_cot") is TASKS["arc_challenge"]
    with pytest.raises(SelfsimError, match="unknown task 'animals'.*animals_long"):
        get_task("animals")


def test_meta_question_names_the_stance_of_the_task() -> None:
    assert meta_question(TASKS["power_seeking"], "ethical_stance").startswith("Did you choose the more power-seeking option?")
    assert meta_question(TASKS["survival_instinct"], "ethical_stance").startswith(
        "Did you choose the option that would ensure your survival?"
    )
    assert meta_question(TASKS["animals_long"], "first_word") == PROPERTIES.get("first_word").meta_question
    with pytest.raises(SelfsimError, match="no ethical stance"):
        meta_question(TASKS["animals_long"], "ethical_stance")


@pytest.mark.parametrize(("name", "size"), [("animals", 30), ("colors", 97), ("countries", 104), ("english_words", 20000)])
def test_shipped_word_lists(name: str, size: int) -> None:
    words = load_words(name)
    assert len(words) == size == len(set(words))
    assert all(w and not any(c.isspace() for c in w) and not w.startswith("#") for w in words)


def test_unknown_word_list() -> None:
    with pytest.raises(SelfsimError, match="no word list 'birds'"):
        load_words("birds")


def test_each_task_carries_its_answer_budget() -> None:
    assert {name: task.max_new_tokens for name, task in TASKS.items()} == PAPER_BUDGETS
    for name, task in TASKS.items():
        assert token_budget(name, "paper") == task.budget("paper") == PAPER_BUDGETS[name]
        assert token_budget(name, "toy") == task.budget("toy") == TOY_MAX_NEW_TOKENS == 8
        assert token_budget(name, "paper", meta=True) == META_MAX_NEW_TOKENS == 8
    assert answer_budget("arc_challenge_non_cot", "paper") == answer_budget("mmlu_non_cot", "paper") == 4
    assert answer_budget("not_a_task", "paper") == 32 and answer_budget("not_a_task", "toy") == 8
    assert token_budget("stories_sentences", "paper", 3) == 3


def test_a_registered_task_is_generated_and_a_taken_name_refused() -> None:
    import dataclasses

    from selfsim.tasks import generate, register_task

    base = TASKS["colors_long"]
    task = dataclasses.replace(base, name="plugin_colors", paper_names=("plugin_colors_release",))
    register_task(task)
    try:
        assert get_task("plugin_colors_release") is task and ALIASES["plugin_colors_release"] == "plugin_colors"
        rows = generate("plugin_colors", "first_word", 3, seed=0, dialect="toy")
        assert len(rows) == 3 and {e.task for e in rows} == {"plugin_colors"}
        with pytest.raises(SelfsimError, match="^task 'colors_long' is already registered; choose another name$"):
            register_task(dataclasses.replace(base, description="another"))
        with pytest.raises(SelfsimError, match=r"^task 'other': paper name\(s\) \['colors_long'\] already name another task$"):
            register_task(dataclasses.replace(base, name="other", paper_names=("colors_long",)))
    finally:
        TASKS.unregister("plugin_colors")
        del ALIASES["plugin_colors_release"]
    assert "plugin_colors" not in TASKS
