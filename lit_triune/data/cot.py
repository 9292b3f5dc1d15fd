"""The pool of chain-of-thought prompt templates V-Triune draws from, one per sample.

Varying the instruction wording keeps the policy from keying on one fixed sentence. A template
wraps the bare question (`extra_info["question"]`); samples without one keep their prompt.
"""

from __future__ import annotations

import random

DEFAULT_TEMPLATES: tuple[str, ...] = (
    "{question} Think inside <think> </think>, then give the final answer inside <answer> </answer>.",
    "{question} First reason step by step in <think> </think> tags, then answer in <answer> </answer> tags.",
    "{question} Put your reasoning in <think> </think> and only the final answer in <answer> </answer>.",
    "Question: {question}\nReason inside <think> </think>. Final answer inside <answer> </answer>.",
    "{question}\nShow your thinking between <think> and </think>, then the answer between <answer> and </answer>.",
    "Look at the image carefully. {question} Think in <think> </think>, answer in <answer> </answer>.",
    "{question} Work it out inside <think> </think> and write the result inside <answer> </answer>.",
    "Solve this: {question} Use <think> </think> for reasoning and <answer> </answer> for the answer.",
    "{question} Before answering, think it through in <think> </think>. Then reply in <answer> </answer>.",
    "Task: {question}\nFormat: <think> reasoning </think><answer> final answer </answer>.",
    "{question} Explain briefly inside <think> </think>; give just the answer inside <answer> </answer>.",
    "Examine the picture. {question} Reasoning goes in <think> </think>, the answer in <answer> </answer>.",
    "{question} Think carefully (in <think> </think>) and then answer (in <answer> </answer>).",
    "Answer the question about the image. {question} Wrap reasoning in <think> </think> and the answer in <answer> </answer>.",
    "{question} Reply as <think> your reasoning </think><answer> your answer </answer>.",
    "Here is a question: {question} Think first in <think> </think>, then answer in <answer> </answer>.",
    "{question} Let's think step by step inside <think> </think>, then state the answer inside <answer> </answer>.",
    "Consider the image. {question} Write your thoughts in <think> </think> and conclude in <answer> </answer>.",
    "{question} Keep reasoning within <think> </think> and the final result within <answer> </answer>.",
    "Please answer: {question} Use <think> </think> to reason and <answer> </answer> for the final answer.",
)


class CoTPool:
    """Draws one template per sample by a seeded RNG keyed on (seed, sample id): order-independent."""

    def __init__(self, templates: list[str] | tuple[str, ...] | None = None, seed: int = 0) -> None:
        templates = tuple(templates) if templates is not None else DEFAULT_TEMPLATES
        if not templates:
            raise ValueError("CoT template pool must not be empty")
        for t in templates:
            if "{question}" not in t:
                raise ValueError(f"each CoT template must contain '{{question}}', got {t!r}")
        self.templates, self.seed = templates, seed

    def __len__(self) -> int:
        return len(self.templates)

    def apply(self, question: str, sample_id: str) -> str:
        # str.replace, not str.format: a question with braces must not be interpreted.
        template = random.Random(f"{self.seed}/{sample_id}").choice(self.templates)
        return template.replace("{question}", question)
