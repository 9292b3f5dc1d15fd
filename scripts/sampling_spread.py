"""Is there reward for RL to climb? Per task: sample G completions per prompt from an exported policy and print
the mean accuracy at the sampling temperature, pass@G, the share of groups whose rewards differ (the only ones
GRPO learns from) and the distinct answers per group.

    python scripts/sampling_spread.py <hf_dir> [--tasks grounding detection ocr] [--prompts 24] [--group 8]
                                     [--temperature 1.0] [--iou 0.99]

<hf_dir> is a policy exported with `lit-triune-export <ckpt> <hf_dir>`; prompts are fresh synthetic samples
(seed 999, easy, 112 px), scored by the trainer's own verifiers at IoU threshold --iou.
"""

from __future__ import annotations

import argparse

import torch

from lit_triune.data import PromptBuilder, generate
from lit_triune.rewards.scoring import score
from lit_triune.rl import policy as policy_lib
from lit_triune.rl.records import final_answer
from lit_triune.rollout.base import SamplingConfig
from lit_triune.rollout.hf_engine import HFGenerateEngine


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("policy")
    p.add_argument("--tasks", nargs="+", default=["grounding", "detection", "ocr"])
    p.add_argument("--prompts", type=int, default=24)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--iou", type=float, default=0.99)
    args = p.parse_args()
    torch.set_num_threads(1)
    model = policy_lib.load_policy(args.policy).eval()
    processor = policy_lib.load_processor(args.policy)
    builder, engine, g = PromptBuilder(args.policy), HFGenerateEngine(model, processor), args.group
    for task in args.tasks:
        samples = generate(task, args.prompts, seed=999)
        items = [builder.build(s) for s in samples]
        rollout = engine.generate([it["prompt"] for it in items], [it["image"] for it in items],
                                  SamplingConfig(n=g, max_new_tokens=128, temperature=args.temperature, seed=0))
        texts = processor.tokenizer.batch_decode(rollout.completion_ids, skip_special_tokens=False)
        texts = [t.split("<|im_end|>")[0] for t in texts]
        groups = []
        for k, sample in enumerate(samples):
            rows = texts[k * g:(k + 1) * g]
            accs = [score(t, sample["reward_model"], image_size=(112, 112), iou_threshold=args.iou)["accuracy"]
                    for t in rows]
            groups.append((accs, len({final_answer(t) for t in rows})))
        n = len(groups)
        print(f"{task:10s} accuracy@T={args.temperature:g} {sum(sum(a) / g for a, _ in groups) / n:.2f}  "
              f"pass@{g} {sum(max(a) > 0 for a, _ in groups) / n:.2f}  "
              f"groups with reward spread {sum(len(set(a)) > 1 for a, _ in groups) / n:.2f}  "
              f"distinct answers per group {sum(d for _, d in groups) / n:.1f}", flush=True)


if __name__ == "__main__":
    main()
