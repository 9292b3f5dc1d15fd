"""Paper filters (per-rule, per-source report) and the pass@k difficulty filter with a fake engine."""

import torch

from lit_triune.data import PromptBuilder, generate
from lit_triune.data.difficulty import difficulty_filter
from lit_triune.data.filters import filter_samples, format_report
from lit_triune.data.prepare import main
from lit_triune.rollout.base import Rollout


def _math(answer, source="r", question="Compute."):
    s = generate("math", 1)[0]
    s["data_source"] = source
    s["prompt"][0]["content"] = "<image>" + question
    s["reward_model"] = {**s["reward_model"], "ground_truth": answer, "answer": answer}
    return s


def test_rules_report_per_rule_per_source():
    samples = [
        _math("4"), _math("B"), _math("3", question="Which? (A) 3 (B) 4"), _math("True"),
        _math("x=3", source="r2"), _math("a very long answer indeed"),
    ]
    big = generate("grounding", 1)[0]
    big["reward_model"] = {**big["reward_model"], "ground_truth": "[0, 0, 100, 100]"}
    ocr = generate("ocr", 2)
    ocr[0]["reward_model"] = {**ocr[0]["reward_model"], "ground_truth": "日本語"}
    kept, report = filter_samples(samples + [big] + ocr)
    assert report["reasoning/multiple_choice"] == {"r": 2}
    assert report["reasoning/true_false"] == {"r": 1}
    assert report["reasoning/answer_chars"] == {"r2": 1}
    assert report["reasoning/answer_too_long"] == {"r": 1}
    assert report["grounding/box_over_half_image"] == {"synthetic_grounding": 1}
    assert report["ocr/not_english"] == {"synthetic_ocr": 1}
    assert report["kept"] == {"r": 1, "synthetic_ocr": 1}
    assert "reasoning/answer_chars" in format_report(report)


def test_detection_balance_and_counting_balance():
    easy = generate("detection", 60, difficulty="easy")  # 1-3 boxes each: keep 12 with one box
    single = [s for s in easy if s["reward_model"]["ground_truth"].count("bbox_2d") == 1][:12]
    assert len(single) == 12
    multi = generate("detection", 4, difficulty="medium")  # 2-3 boxes each
    for s in multi:
        s["data_source"] = "synthetic_detection"
    kept, report = filter_samples(single + multi, seed=1)
    assert report["detection/single_multi_balance"] == {"synthetic_detection": 10}  # keep 2 singles : 4 multi
    counting = generate("counting", 30)
    kept, report = filter_samples(counting)
    values = [s["reward_model"]["ground_truth"] for s in kept]
    assert max(values.count(v) for v in set(values)) <= 10


def test_filter_command(tmp_path):
    assert main(["synthetic", "--task", "counting", "--n", "30", "--out", str(tmp_path / "a")]) == 0
    assert main(["filter", "--input", str(tmp_path / "a"), "--out", str(tmp_path / "b"),
                 "--report", str(tmp_path / "r.json")]) == 0
    assert (tmp_path / "b" / "manifest.json").exists() and (tmp_path / "r.json").exists()


class ScriptedEngine:
    """Answers correctly on the first `right[i]` of G samples for prompt i."""

    def __init__(self, answers, right):
        self.answers, self.right = answers, right

    def generate(self, prompts, images, sampling):
        texts, index = [], []
        for i in range(len(prompts)):
            for g in range(sampling.n):
                ok = g < self.right[self.offset + i]
                texts.append(f"<think>x</think><answer>{self.answers[self.offset + i] if ok else 'nope'}</answer>")
                index.append(i)
        self.offset += len(prompts)
        n = len(texts)
        return Rollout(torch.tensor(index), [[1]] * n, None, texts, torch.zeros(n, dtype=torch.bool),
                       torch.zeros(n, dtype=torch.long))

    def sync_weights(self, model):
        pass


def _score_batch(responses, reward_models, *, image_sizes=None, **_):
    return [{"accuracy": float(r.split("<answer>")[1].split("</answer>")[0] == rm["ground_truth"])}
            for r, rm in zip(responses, reward_models, strict=True)]


def test_difficulty_filter_keeps_pass_rate_band():
    samples = generate("counting", 5)
    engine = ScriptedEngine([s["reward_model"]["ground_truth"] for s in samples], right=[0, 1, 4, 7, 8])
    engine.offset = 0
    kept, report = difficulty_filter(samples, engine, _score_batch, PromptBuilder(), k=8, batch_size=2,
                                     min_pass=0.125, max_pass=0.875)
    assert [s["extra_info"]["id"] for s in kept] == [samples[i]["extra_info"]["id"] for i in (1, 2, 3)]
    assert report["rules"] == {"kept": {"synthetic_counting": 3}, "too_easy": {"synthetic_counting": 1},
                               "too_hard": {"synthetic_counting": 1}}
    assert report["pass_rates"][samples[3]["extra_info"]["id"]] == 7 / 8


def test_difficulty_filter_with_real_scorer():
    from lit_triune.rewards import score_batch

    samples = generate("counting", 2)
    engine = ScriptedEngine([s["reward_model"]["ground_truth"] for s in samples], right=[2, 8])
    engine.offset = 0
    kept, report = difficulty_filter(samples, engine, score_batch, PromptBuilder(), k=4)
    assert report["pass_rates"] == {samples[0]["extra_info"]["id"]: 0.5, samples[1]["extra_info"]["id"]: 1.0}
