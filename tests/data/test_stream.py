"""Round trip, rank x worker split, exact resume, and corrupted shards streamed to the end."""

import json

import pytest
from shard_builders import edit_json, rewrite_shard
from torch.utils.data import DataLoader

from lit_triune.data import PromptBuilder, ShardStream, ShardWriter, Source, TriuneDataModule, generate
from lit_triune.data.shards import resolve_shards
from lit_triune.data.stream import plan
from lit_triune.data.synthetic import GENERATOR_VERSION


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    with ShardWriter(out, max_count=10) as w:
        for task in ("counting", "grounding"):
            for s in generate(task, 40, seed=1):
                w.write(s)
    return out


def _ids(batches):
    return [i for b in batches for i in b.ids]


def test_round_trip_datamodule_with_tiny_processor(tmp_path, tiny_model_path):
    dm = TriuneDataModule(synthetic={"counting": 12, "detection": 12}, val_synthetic={"ocr": 5},
                          batch_size=4, cache_dir=str(tmp_path), shard_size=5, model_path=str(tiny_model_path))
    dm.prepare_data()
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    for _ in range(4):
        b = next(it)
        assert len(b) == 4 and len(b.images) == len(b.image_sizes) == len(b.reward_models) == 4
        for prompt, img, (h, w), rm, target in zip(b.prompts, b.images, b.image_sizes, b.reward_models,
                                                   b.sft_targets, strict=True):
            assert "<|vision_start|><|image_pad|><|vision_end|>" in prompt
            assert prompt.rstrip().endswith("assistant")
            assert (img.height, img.width) == (h, w) and h % 28 == 0 and w % 28 == 0
            assert rm["verifier"] in ("counting", "detection")
            assert target.startswith("<think>") and "<answer>" in target
        assert b.cursor is None and b.skips == {}
    val = list(dm.val_dataloader())
    assert sorted(_ids(val)) == sorted(f"ocr-easy-s1000003-{i:07d}" for i in range(5))


def test_question_first_datamodule_puts_the_image_after_the_question(tmp_path, tiny_model_path):
    dm = TriuneDataModule(synthetic={"grounding": 4, "counting": 4}, batch_size=8, cache_dir=str(tmp_path),
                          model_path=str(tiny_model_path), synthetic_layout={"grounding": "question_first"})
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    image = "<|vision_start|><|image_pad|><|vision_end|>"
    for prompt, source in zip(batch.prompts, batch.data_sources, strict=True):
        question = prompt.index("Locate the " if source == "synthetic_grounding" else "How many ")
        assert (question < prompt.index(image)) == (source == "synthetic_grounding")  # counting stays image-first
    assert set(batch.data_sources) == {"synthetic_grounding", "synthetic_counting"}
    assert sorted(p.name for p in (tmp_path / "synthetic").iterdir()) == [
        f"counting-easy-n4-s0-px112-v{GENERATOR_VERSION}",
        f"grounding-easy-n4-s0-px112-v{GENERATOR_VERSION}-question_first"]  # not an image-first cache


def test_plan_partitions_every_epoch():
    src = Source("s", tuple(f"{i}.tar" for i in range(5)), (7, 7, 7, 7, 3))
    for slots in (1, 3, 4, 8):  # fewer and more slots than shards
        for epoch in (0, 1):
            seen = [p for slot in range(slots) for p in plan(src, epoch, slot, slots, seed=0, shuffle=True)]
            assert len(seen) == len(set(seen)) == 31


@pytest.mark.parametrize("train", [False, True])
def test_two_ranks_two_workers_cover_dataset_without_overlap(shard_dir, train):
    paths, counts = resolve_shards(str(shard_dir))
    src = [Source("all", tuple(paths), tuple(counts))]
    seen = []
    for rank in range(2):
        stream = ShardStream(src, PromptBuilder(), batch_size=4, rank=rank, world_size=2, train=train, seed=5)
        loader = DataLoader(stream, batch_size=None, num_workers=2, collate_fn=lambda b: b)
        if train:  # one epoch per slot: 80 samples over 4 slots = 20 each = 5 batches per worker
            it = iter(loader)
            got = []
            while len(got) < 40:
                got.extend(next(it).ids)
            seen.extend(got[:40])
        else:
            seen.extend(_ids(loader))
    assert len(seen) == len(set(seen)) == 80


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_continues_exactly(tmp_path, num_workers):
    kw = dict(synthetic={"counting": 30, "ocr": 30}, weights={"synthetic_ocr": 2.0}, batch_size=3,
              cache_dir=str(tmp_path), shard_size=7, num_workers=num_workers, seed=11)
    full = TriuneDataModule(**kw)
    full.prepare_data()
    full.setup("fit")
    it = iter(full.train_dataloader())
    reference = [next(it).ids for _ in range(12)]  # 36 samples: crosses epochs of the smaller source

    first = TriuneDataModule(**kw)
    first.setup("fit")
    it = iter(first.train_dataloader())
    head = [next(it).ids for _ in range(5)]
    state = json.loads(json.dumps(first.state_dict()))  # checkpoints hold plain data
    del it

    resumed = TriuneDataModule(**kw)
    resumed.setup("fit")
    resumed.load_state_dict(state)
    it = iter(resumed.train_dataloader())
    tail = [next(it).ids for _ in range(7)]
    assert head + tail == reference
    # a second save/restore, from the resumed run, still lines up
    more = [next(it).ids for _ in range(2)]
    again = TriuneDataModule(**kw)
    again.setup("fit")
    again.load_state_dict(resumed.state_dict())
    it = iter(again.train_dataloader())
    assert head + tail + more + [next(it).ids for _ in range(3)] == reference + _continue(kw, 12, 5)


def _continue(kw, start, n):
    dm = TriuneDataModule(**kw)
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    return [next(it).ids for _ in range(start + n)][start:]


def test_corrupted_shards_stream_to_the_end_with_exact_skip_counts(tmp_path):
    out = tmp_path / "bad"
    with ShardWriter(out, max_count=25) as w:
        for s in generate("detection", 100, seed=2):
            w.write(s)
    # 5 % corrupted: 2 bad images, 1 missing field, 1 unknown verifier, 1 inverted box
    damage = {
        "detection-easy-s2-0000003": lambda m: m.__setitem__("img0.png", b"\x89PNG\r\n\x1a\nbroken"),
        "detection-easy-s2-0000030": lambda m: m.__setitem__("img0.png", m["img0.png"][:40]),
        "detection-easy-s2-0000051": lambda m: edit_json(m, lambda s: s.pop("ability")),
        "detection-easy-s2-0000077": lambda m: edit_json(m, lambda s: s["reward_model"].__setitem__("verifier", "nope")),
        "detection-easy-s2-0000099": lambda m: edit_json(m, lambda s: s["reward_model"].__setitem__(
            "ground_truth", "[{'bbox_2d': [50, 50, 10, 10], 'label': 'square'}]")),
    }
    for shard in sorted(out.glob("*.tar")):
        rewrite_shard(shard, lambda key, m: damage[key](m) if key in damage else None)
    dm = TriuneDataModule(train={"bad": str(out)}, val={"bad": str(out)}, batch_size=4, num_workers=2,
                          cache_dir=str(tmp_path))
    dm.setup("validate")
    loader = dm.val_dataloader()
    batches = list(loader)
    skips: dict = dict(loader.pending_skips)
    for b in batches:
        for k, v in b.skips.items():
            skips[k] = skips.get(k, 0) + v
    ids = _ids(batches)
    assert len(ids) == len(set(ids)) == 95
    assert not set(damage) & set(ids)
    assert skips == {"bad_image": 2, "missing_field": 1, "unknown_verifier": 1, "bad_boxes": 1}
