"""Turns prompts (text + image) and sampled completions into the tensors a policy forward pass needs.

Both rollout engines and the trainer go through `encode_prompts`, so the prompt token ids and the
number of image tokens are the same everywhere. Rows are prompt + completion, right-padded, with
3-D M-RoPE position ids computed explicitly: without `mm_token_type_ids` transformers silently falls
back to 1-D positions, the classic cause of trainer/engine log-prob gaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass
class EncodedPrompts:
    """B prompts after the processor: token ids with image pads expanded, and their vision inputs."""

    input_ids: list[list[int]]  # B lists, <|image_pad|> repeated once per visual token
    pixel_values: Tensor | None  # [P, C*t*p*p] patches of all B images, prompt-major
    image_grid_thw: Tensor | None  # [B, 3] (t, h, w) patch grid per image
    patches_per_prompt: list[int]  # B counts summing to P
    # B tensors [tokens_i, H]: the frozen vision tower's output for each image, when computed once per
    # rollout batch (`models/vision.py: image_features`) and shared by generation and every update forward pass.
    image_features: tuple[Tensor, ...] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    def select(self, rows: list[int]) -> EncodedPrompts:
        """The prompts `rows` (indices into the B prompts), in that order."""
        rows = [int(r) for r in rows]
        pixel_values = grid = None
        if self.pixel_values is not None:
            pixel_values = patch_rows(self.pixel_values, torch.as_tensor(self.patches_per_prompt), rows)
            grid = self.image_grid_thw[rows]
        features = None if self.image_features is None else tuple(self.image_features[r] for r in rows)
        return EncodedPrompts([self.input_ids[r] for r in rows], pixel_values, grid,
                              [self.patches_per_prompt[r] for r in rows], features)

    @staticmethod
    def concat(parts: list[EncodedPrompts]) -> EncodedPrompts:
        """Prompts of several batches, in order (vision fields must be present in all parts or none)."""
        has_pixels = [p.pixel_values is not None for p in parts]
        if any(has_pixels) and not all(has_pixels):
            raise ValueError("cannot concatenate encoded prompts with and without images")
        features = None
        if all(p.image_features is not None for p in parts):
            features = tuple(f for p in parts for f in p.image_features)
        return EncodedPrompts(
            input_ids=[ids for p in parts for ids in p.input_ids],
            pixel_values=torch.cat([p.pixel_values for p in parts]) if all(has_pixels) else None,
            image_grid_thw=torch.cat([p.image_grid_thw for p in parts]) if all(has_pixels) else None,
            patches_per_prompt=[c for p in parts for c in p.patches_per_prompt],
            image_features=features,
        )


def patch_rows(pixel_values: Tensor, per_row: Tensor, rows: list[int]) -> Tensor:  # [sum of rows' patches, D]
    """The image patches of `rows`, in that order, from `pixel_values` ([P, D]) that stacks every row's patches;
    `per_row` ([N] long) holds each row's patch count."""
    starts = torch.cumsum(per_row, 0) - per_row  # [N]
    parts = [pixel_values[s : s + c] for s, c in zip(starts[rows].tolist(), per_row[rows].tolist(), strict=True)]
    return torch.cat(parts) if parts else pixel_values[:0]


def encode_prompts(processor: Any, prompts: list[str], images: list[Any] | None) -> EncodedPrompts:
    """Runs the HF processor once per batch; `images[i]` belongs to `prompts[i]` (None for text-only)."""
    has_images = images is not None and any(im is not None for im in images)
    if has_images and any(im is None for im in images):
        raise ValueError("a batch mixes prompts with and without images; split it by modality first")
    out = processor(text=list(prompts), images=list(images) if has_images else None, padding=False)
    ids = [list(map(int, row)) for row in out["input_ids"]]
    if not has_images:
        return EncodedPrompts(ids, None, None, [0] * len(ids))
    grid = torch.as_tensor(out["image_grid_thw"]).long()  # [B, 3]
    pixel_values = torch.as_tensor(out["pixel_values"])  # [P, D]
    return EncodedPrompts(ids, pixel_values, grid, grid.prod(-1).tolist())


@dataclass
class PolicyInputs:
    """N = B*G rows of prompt + completion; everything the forward pass and the loss need."""

    input_ids: Tensor  # [N, L] long, right-padded
    attention_mask: Tensor  # [N, L] long
    position_ids: Tensor  # [3, N, L] long, M-RoPE (temporal, height, width)
    pixel_values: Tensor | None  # [P_N, D] the prompt's patches repeated for each of its rows
    image_grid_thw: Tensor | None  # [N, 3]
    completion_ids: Tensor  # [N, T] long, right-padded with pad_id
    completion_mask: Tensor  # [N, T] bool
    prompt_lengths: Tensor  # [N] long
    prompt_index: Tensor  # [N] long, which prompt each row came from

    def select(self, rows: Tensor) -> PolicyInputs:
        """The sub-batch of `rows` ([M] long), trimmed to its own longest row (minimal padding)."""
        pixel_values = None
        if self.pixel_values is not None:
            pixel_values = patch_rows(self.pixel_values, self.image_grid_thw.prod(-1), rows.tolist())
        mask = self.attention_mask[rows]
        length = int(mask.sum(-1).max())
        t = int(self.completion_mask[rows].sum(-1).max().clamp(min=1))
        return PolicyInputs(
            input_ids=self.input_ids[rows, :length],
            attention_mask=mask[:, :length],
            position_ids=self.position_ids[:, rows, :length],
            pixel_values=pixel_values,
            image_grid_thw=None if self.image_grid_thw is None else self.image_grid_thw[rows],
            completion_ids=self.completion_ids[rows, :t],
            completion_mask=self.completion_mask[rows, :t],
            prompt_lengths=self.prompt_lengths[rows],
            prompt_index=self.prompt_index[rows],
        )

    def to(self, device: torch.device | str) -> PolicyInputs:
        moved = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()}
        return PolicyInputs(**moved)


def _rows_of_patches(prompts: EncodedPrompts, prompt_index: Tensor) -> Tensor | None:
    if prompts.pixel_values is None:
        return None
    per_prompt = torch.split(prompts.pixel_values, prompts.patches_per_prompt)
    return torch.cat([per_prompt[i] for i in prompt_index.tolist()])  # [P_N, D]


# Rows' positions from each prompt's (`_positions_from_prompts`); False runs the model's rule on every row
# (benchmarks/vs_trl.py --ablate prompt_positions). The same positions either way.
POSITIONS_PER_PROMPT = True


def build_policy_inputs(
    model: Any,
    prompts: EncodedPrompts,
    completion_ids: list[list[int]],
    prompt_index: Tensor,  # [N] long
    pad_id: int,
    image_token_id: int | None,
    *,
    pixels: bool = True,
) -> PolicyInputs:
    """Concatenates each row's prompt and completion and computes its 3-D positions with the model's rule.

    `pixels=False` leaves `pixel_values` out (None): for forward passes that are given precomputed
    image features, where copying each prompt's patches once per row would be wasted work.
    """
    n = len(completion_ids)
    rows = [prompts.input_ids[p] + list(c) for p, c in zip(prompt_index.tolist(), completion_ids, strict=True)]
    length = max(len(r) for r in rows)
    t_max = max(1, max((len(c) for c in completion_ids), default=1))
    input_ids = torch.full((n, length), pad_id, dtype=torch.long)  # [N, L]
    attention_mask = torch.zeros((n, length), dtype=torch.long)  # [N, L]
    completions = torch.full((n, t_max), pad_id, dtype=torch.long)  # [N, T]
    completion_mask = torch.zeros((n, t_max), dtype=torch.bool)  # [N, T]
    prompt_lengths = torch.tensor([len(prompts.input_ids[p]) for p in prompt_index.tolist()])  # [N]
    for i, (row, comp) in enumerate(zip(rows, completion_ids, strict=True)):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
        if comp:
            completions[i, : len(comp)] = torch.tensor(list(comp))
            completion_mask[i, : len(comp)] = True
    grid = prompts.image_grid_thw[prompt_index] if prompts.image_grid_thw is not None else None  # [N, 3]
    position_ids = None
    if POSITIONS_PER_PROMPT:
        position_ids = _positions_from_prompts(model, prompts, prompt_index, completion_ids, length, image_token_id)
    if position_ids is None:
        position_ids = compute_position_ids(model, input_ids, attention_mask, grid, image_token_id)
    return PolicyInputs(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        pixel_values=_rows_of_patches(prompts, prompt_index) if pixels else None,
        image_grid_thw=grid,
        completion_ids=completions,
        completion_mask=completion_mask,
        prompt_lengths=prompt_lengths,
        prompt_index=prompt_index.clone(),
    )


def _positions_from_prompts(
    model: Any,
    prompts: EncodedPrompts,
    prompt_index: Tensor,  # [N] long
    completion_ids: list[list[int]],
    length: int,
    image_token_id: int | None,
) -> Tensor | None:  # [3, N, length], or None where this shortcut does not apply
    """The rows' 3-D positions from each prompt's positions, computed once per prompt, not once per row.

    The model's rule (`get_rope_index`, a Python loop over rows) gives a text token that follows text the
    previous position + 1 on all three axes. A completion continues its prompt's last text, so its k-th token
    sits at (the prompt's last position) + 1 + k: exactly what the rule gives the whole row, at the cost of
    the B prompts instead of the B*G rows (the update's largest step outside the forward on the tiny default).
    Padding keeps the rule's position 0. None (the caller runs the rule on every row) for text-only models,
    prompts ending in an image token, or completions holding one.
    """
    if _inner_model(model) is None or prompts.image_grid_thw is None or image_token_id is None:
        return None
    used = sorted(set(prompt_index.tolist()))
    if any(prompts.input_ids[p][-1] == image_token_id for p in used):
        return None
    if any(image_token_id in c for c in completion_ids):
        return None
    lengths = [len(prompts.input_ids[p]) for p in used]
    ids = torch.zeros((len(used), max(lengths)), dtype=torch.long)  # [U, Lp] right-padded, as the rows are
    mask = torch.zeros((len(used), max(lengths)), dtype=torch.long)  # [U, Lp]
    for j, (p, n) in enumerate(zip(used, lengths, strict=True)):
        ids[j, :n] = torch.tensor(prompts.input_ids[p])
        mask[j, :n] = 1
    prompt_positions = compute_position_ids(model, ids, mask, prompts.image_grid_thw[used], image_token_id)
    slot = {p: j for j, p in enumerate(used)}
    out = torch.zeros((3, len(completion_ids), length), dtype=prompt_positions.dtype)  # [3, N, L]
    for i, (p, comp) in enumerate(zip(prompt_index.tolist(), completion_ids, strict=True)):
        j = slot[p]
        n = lengths[j]
        out[:, i, :n] = prompt_positions[:, j, :n]
        if comp:
            out[:, i, n : n + len(comp)] = prompt_positions[0, j, n - 1] + 1 + torch.arange(len(comp))
    return out


def _inner_model(model: Any) -> Any:
    """The module that owns `get_rope_index` (Qwen2.5-VL: `model.model`)."""
    for candidate in (model, getattr(model, "model", None)):
        if candidate is not None and hasattr(candidate, "get_rope_index"):
            return candidate
    return None


def compute_position_ids(
    model: Any,
    input_ids: Tensor,  # [N, L]
    attention_mask: Tensor,  # [N, L]
    image_grid_thw: Tensor | None,  # [N, 3]
    image_token_id: int | None,
) -> Tensor:  # [3, N, L]
    inner = _inner_model(model)
    if inner is None or image_grid_thw is None or image_token_id is None:
        pos = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # [N, L] 1-D positions for text-only models
        return pos.unsqueeze(0).expand(3, -1, -1).clone()
    mm_token_type_ids = (input_ids == image_token_id).int()  # [N, L] 1 on image tokens
    position_ids, _ = inner.get_rope_index(
        input_ids,
        mm_token_type_ids=mm_token_type_ids,
        image_grid_thw=image_grid_thw,
        attention_mask=attention_mask,
    )
    return position_ids  # [3, N, L]
