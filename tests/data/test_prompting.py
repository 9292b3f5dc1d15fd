"""CoT pool, chat template and DataModule argument errors."""

import pytest

from lit_triune.boxes import smart_resize
from lit_triune.data import DEFAULT_TEMPLATES, CoTPool, PromptBuilder, TriuneDataModule, generate


def test_cot_pool_is_seeded_and_applied_only_where_configured():
    assert len(DEFAULT_TEMPLATES) == 20
    pool = CoTPool(seed=1)
    assert pool.apply("Q{x}?", "id-1") == pool.apply("Q{x}?", "id-1")  # braces in a question are kept
    drawn = {pool.apply("Q", f"id-{i}") for i in range(200)}
    assert len(drawn) > 10
    changed = 0
    for sample in generate("counting", 6):
        plain = PromptBuilder().build(sample)["prompt"]
        with_cot = PromptBuilder(cot=True, seed=1).build(sample)["prompt"]
        assert with_cot == PromptBuilder(cot=True, seed=1).build(sample)["prompt"]
        assert PromptBuilder(cot=True, cot_sources=["elsewhere"], seed=1).build(sample)["prompt"] == plain
        sample["extra_info"]["cot"] = False  # a sample can opt out
        assert PromptBuilder(cot=True, seed=1).build(sample)["prompt"] == plain
        assert sample["extra_info"]["question"] in with_cot
        changed += with_cot != plain
    assert changed >= 4
    with pytest.raises(ValueError, match="must contain '{question}'"):
        CoTPool(["no placeholder"])


def test_processor_chat_template_and_pixels(tiny_model_path):
    b = PromptBuilder(str(tiny_model_path))
    item = b.build(generate("ocr", 1)[0])
    assert item["image_size"] == (112, 112)
    assert item["prompt"].count("<|image_pad|>") == 1 and "<|im_start|>assistant" in item["prompt"]
    assert b.max_pixels == 112 * 112


def test_smart_resize_matches_qwen_rule():
    assert smart_resize(112, 112, min_pixels=56 * 56, max_pixels=112 * 112) == (112, 112)
    assert smart_resize(10, 10, min_pixels=56 * 56, max_pixels=112 * 112) == (56, 56)
    h, w = smart_resize(1000, 3000, max_pixels=112 * 112)
    assert h % 28 == 0 and w % 28 == 0 and h * w <= 112 * 112


def test_datamodule_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown task 'colour'"):
        TriuneDataModule(synthetic={"colour": 5})
    with pytest.raises(ValueError, match=r"weights name unknown sources \['nope'\]"):
        TriuneDataModule(synthetic={"counting": 5}, weights={"nope": 1.0})
    with pytest.raises(ValueError, match="give training data"):
        TriuneDataModule()
    with pytest.raises(ValueError, match="synthetic_difficulty must be one of"):
        TriuneDataModule(synthetic={"counting": 5}, synthetic_difficulty="trivial")
    with pytest.raises(ValueError, match="synthetic_layout must be one of"):
        TriuneDataModule(synthetic={"counting": 5}, synthetic_layout="sideways")
    with pytest.raises(ValueError, match="synthetic_layout: unknown task 'colour'"):
        TriuneDataModule(synthetic={"counting": 5}, synthetic_layout={"colour": "question_first"})


def test_math_instructions_follow_the_released_loader_contract():
    """mathverify prompts without a bare question get a seeded step-by-step + answer-format sentence:
    \\boxed{} only for free-form rows (format_ratio 0), <think>/<answer> tags for closed-form rows."""

    def suffix(prompt: str) -> str:  # what follows the sample's own user text
        return prompt.split("<|im_start|>user")[-1].split("<|im_end|>")[0].split("\n\n", 1)[1]

    sample = next(iter(generate("math", 1)))
    del sample["extra_info"]["question"]  # as Orsta rows: the CoT pool cannot act
    plain = PromptBuilder(cot=True).build(sample)["prompt"]
    assert "\n\n" not in plain.split("<|im_start|>user")[-1]
    closed = PromptBuilder(cot=True, math_instructions=True, seed=3).build(sample)["prompt"]
    assert closed == PromptBuilder(cot=True, math_instructions=True, seed=3).build(sample)["prompt"]  # seeded
    assert "<think>" in suffix(closed) and "<answer>" in suffix(closed) and "\\boxed{" in suffix(closed)
    sample["reward_model"]["format_ratio"] = 0.0
    free = suffix(PromptBuilder(math_instructions=True, seed=3).build(sample)["prompt"])
    assert "\\boxed{}" in free and "<think>" not in free and "<answer>" not in free
    drawn = set()
    for i in range(40):
        sample["extra_info"]["id"] = f"m-{i}"
        drawn.add(suffix(PromptBuilder(math_instructions=True, seed=3).build(sample)["prompt"]))
    assert len(drawn) > 10  # a pool, not one fixed sentence
    counting = next(iter(generate("counting", 1)))  # other verifiers are untouched
    assert PromptBuilder(math_instructions=True).build(counting)["prompt"] == PromptBuilder().build(counting)["prompt"]
