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


# Math instructions appended to `mathverify` prompts, as the released V-Triune loader does for Orsta rows
# (its rows carry no bare question, so the template pool above cannot act on them). Our own wording, same
# contract: a "reason step by step" sentence, then where the answer goes. Free-form (format_ratio 0):
# only \boxed{}; closed-form: <think>/<answer> tags with the boxed answer inside <answer>.
MATH_REASONING: tuple[str, ...] = (
    "Reason through the problem one step at a time.",
    "Work out the solution step by step.",
    "Explain your reasoning in clear, ordered steps.",
    "Solve it carefully, showing each step of your reasoning.",
    "Think the problem through step by step before answering.",
    "Lay out your solution as a sequence of small steps.",
    "Go through the problem methodically, one step after another.",
    "Show the steps that lead you to the result.",
)
MATH_BOXED: tuple[str, ...] = (
    "Write the final answer in \\boxed{}.",
    "Give the final result inside \\boxed{}.",
    "End with the answer enclosed in \\boxed{}.",
    "State the final answer within \\boxed{}.",
    "Put only the final answer inside \\boxed{}.",
    "Conclude with \\boxed{} around the final answer.",
)
MATH_TAGGED: tuple[str, ...] = (
    "Keep your reasoning inside <think> </think> and the final answer inside <answer> </answer>, written as"
    " \\boxed{}: <think>\nreasoning\n</think>\n<answer>\n\\boxed{answer}\n</answer>.",
    "Reason within <think> </think>, then answer within <answer> </answer> with the result in \\boxed{}, like"
    " <think>\nreasoning\n</think>\n<answer>\n\\boxed{answer}\n</answer>.",
    "Use <think> </think> for the reasoning and <answer> </answer> for the answer, boxed:"
    " <think>\nreasoning\n</think>\n<answer>\n\\boxed{answer}\n</answer>.",
    "Format: <think>\nyour steps\n</think>\n<answer>\n\\boxed{final answer}\n</answer>.",
)


def math_instruction(sample_id: str, free_form: bool, seed: int = 0) -> str:
    """The instruction appended to a `mathverify` prompt: one reasoning sentence and one answer-format
    sentence, drawn by a seeded RNG keyed on (seed, sample id) so it is stable across epochs and workers."""
    rng = random.Random(f"math/{seed}/{sample_id}")
    return rng.choice(MATH_REASONING) + " " + rng.choice(MATH_BOXED if free_form else MATH_TAGGED)
