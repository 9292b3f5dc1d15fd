"""The GRPO update on the CPU default's mixed batch: one padded forward vs length-ordered micro-batches.

A rollout batch of the default mixes 10-token numbers with 100-token detection answers. One forward
over all rows pads every row to the longest; `micro_batch_size` splits the rows, and `run_update` hands
each micro-batch whole groups ordered by their longest completion (`by_group_length`), so short answers
are padded only to short answers. Variants, on one fixed batch, in one process, alternating each round:

- whole:      micro_batch_size None (one forward + backward over all rows)
- ordered:    micro_batch_size --micro (the trainer's code: whole groups ordered by length)
- unordered:  the same micro-batches in rollout order (by_group_length replaced by the identity)

The batch: --prompts prompts, round-robin over the default's six synthetic tasks (tiny preset, 112 px,
frozen ViT with its features computed once, as the RL stage runs), x --group completions each; every
completion is its sample's own SFT answer (detection with 1-3 boxes: 40-110 tokens), so lengths follow
the default's. Forward, backward, clip and AdamW step, through `lit_triune.rl.update.run_update`.

    python benchmarks/update_micro_batches.py [--prompts 16] [--group 8] [--micro 32] [--steps 5] [--rounds 3]

Last line: `ratio: <whole / ordered update time>`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
TASKS = ("grounding", "detection", "counting", "ocr", "chart", "math")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--micro", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    import torch

    import lit_triune.rl.update as update_mod
    from lit_triune.data import PromptBuilder, generate
    from lit_triune.models.policy_inputs import build_policy_inputs, encode_prompts
    from lit_triune.models.tiny import build_tiny_model
    from lit_triune.models.vision import image_features
    from lit_triune.rl import policy as policy_lib

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    path = str(build_tiny_model("tiny"))
    model = policy_lib.load_policy(path)
    processor = policy_lib.load_processor(path)
    policy_lib.apply_freeze(model, "vision")
    model.train()
    model.model.visual.eval()
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-6)
    builder = PromptBuilder(path)
    per_task = -(-args.prompts // len(TASKS))
    pools = {t: generate(t, per_task, seed=0) for t in TASKS}
    samples = [pools[TASKS[i % len(TASKS)]][i // len(TASKS)] for i in range(args.prompts)]
    items = [builder.build(s) for s in samples]
    enc = encode_prompts(processor, [it["prompt"] for it in items], [it["image"] for it in items])
    tok = processor.tokenizer
    answers = [tok(s["extra_info"]["sft_target"], add_special_tokens=False)["input_ids"] for s in samples]
    completions = [answers[i] for i in range(args.prompts) for _ in range(args.group)]
    index = torch.arange(args.prompts).repeat_interleave(args.group)
    advantages = torch.randn(len(completions), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = image_features(model, enc)
    inputs = build_policy_inputs(model, enc, completions, index, tok.pad_token_id, model.config.image_token_id,
                                 pixels=False)

    def step(finite: bool) -> tuple[bool, float]:
        norm = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
        opt.step()
        opt.zero_grad(set_to_none=True)
        return True, norm

    ordered = update_mod.by_group_length

    def one(variant: str) -> float:
        update_mod.by_group_length = ordered if variant != "unordered" else (lambda rows, _inputs: rows)
        settings = update_mod.UpdateSettings(micro_batch_size=None if variant == "whole" else args.micro)
        t = time.perf_counter()
        update_mod.run_update(model=model, inputs=inputs, advantages=advantages,
                              loss_mask=inputs.completion_mask.clone(), settings=settings, features=features,
                              backward=lambda loss: loss.backward(), step=step, global_token_count=lambda n: n)
        return time.perf_counter() - t

    variants = ["whole", "ordered", "unordered"]
    times: dict[str, list[float]] = {v: [] for v in variants}
    one("whole")  # warm-up
    for r in range(args.rounds):
        for v in variants if r % 2 == 0 else variants[::-1]:
            times[v] += [one(v) for _ in range(args.steps)]
    update_mod.by_group_length = ordered
    lengths = [len(c) for c in completions]
    print(f"{args.prompts} prompts x {args.group} completions, tasks {', '.join(TASKS)}; completion tokens "
          f"mean {statistics.mean(lengths):.0f}, max {max(lengths)}; micro-batch {args.micro} rows; "
          f"{args.rounds} rounds x {args.steps} steps, {args.threads} thread(s)")
    med = {v: statistics.median(ts) for v, ts in times.items()}
    for v in variants:
        print(f"{v:>10}: {med[v]:.3f} s/update")
    print(f"unordered / ordered: {med['unordered'] / med['ordered']:.2f}")
    print(f"ratio: {med['whole'] / med['ordered']:.2f}")


if __name__ == "__main__":
    main()
