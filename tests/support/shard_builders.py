"""Small builders shared by the data tests."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from lit_triune.data.shards import ShardWriter, iter_shard
from lit_triune.data.synthetic import generate


def rewrite_shard(path: Path, edit) -> None:
    """Rewrite a shard in place, passing each (key, members) through `edit` (which may mutate it)."""
    samples = list(iter_shard(path))
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, members in samples:
            edit(key, members)
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def edit_json(members: dict, fn) -> None:
    spec = json.loads(members["json"])
    fn(spec)
    members["json"] = json.dumps(spec).encode()


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def raw_samples(sample_dir: Path) -> list[tuple[str, dict[str, bytes]]]:
    return [r for p in sorted(sample_dir.glob("*.tar")) for r in iter_shard(p)]


def sample_members(key: str, spec: dict, image: bytes | None) -> list[tuple[str, bytes]]:
    out = [(f"{key}.json", json.dumps(spec).encode())]
    if image is not None:
        out.append((f"{key}.img0.png", image))
    return out


def build_corrupt_set(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A shard set with 10 kinds of corruption; returns (dir, {what: text the report must contain})."""
    good = tmp_path / "set"
    with ShardWriter(good, prefix="good", max_count=4) as w:
        for s in generate("counting", 6, seed=0) + generate("grounding", 2, seed=0):
            w.write(s)
    raws = raw_samples(good)
    counting_key, counting = raws[0]
    grounding = next(m for k, m in raws if json.loads(m["json"])["reward_model"]["verifier"] == "grounding")
    spec, img = json.loads(counting["json"]), counting["img0.png"]
    gspec, gimg = json.loads(grounding["json"]), grounding["img0.png"]

    def edited(base: dict, fn) -> dict:
        out = json.loads(json.dumps(base))
        fn(out)
        return out

    members = [("bad_json.json", b"{not json"), ("bad_json.img0.png", img)]  # 1 not JSON
    members += [("no_json.img0.png", img)]  # 2 an image without its .json
    members += sample_members("no_image", spec, None)  # 3 the .json names a missing image member
    members += sample_members("bad_image", spec, b"\x89PNG\r\n\x1a\n not really a png")  # 4 undecodable image
    members += sample_members("unknown_verifier", edited(spec, lambda s: s["reward_model"].update(verifier="astrology")), img)  # 5
    members += sample_members("no_reward_model", edited(spec, lambda s: s.pop("reward_model")), img)  # 6 missing field
    members += sample_members("inverted_box", edited(gspec, lambda s: s["reward_model"].update(ground_truth="[60, 60, 10, 10]")), gimg)  # 7
    two = edited(spec, lambda s: s["prompt"][-1].update(content="<image><image> " + s["prompt"][-1]["content"]))
    members += sample_members("image_count", two, img)  # 8 two placeholders, one image
    members += sample_members(counting_key, spec, img)  # 9 an id already in good-000000.tar
    write_tar(good / "bad-000000.tar", members)
    # 10 a shard cut short: its third sample is half written
    trunc = write_tar(good / "cut-000000.tar", [m for k, ms in raws[4:7] for m in
                                           ((f"{k}x.json", ms["json"]), (f"{k}x.img0.png", ms["img0.png"]))])
    trunc.write_bytes(trunc.read_bytes()[: 512 * 3 + len(raws[4][1]["json"]) + 700])
    # 11 not a tar at all
    (good / "garbage-000000.tar").write_bytes(b"this is not a tar file\n" * 40)
    # 12 the manifest promises more samples than the shard holds
    manifest = json.loads((good / "manifest.json").read_text())
    manifest["shards"][1]["count"] += 3
    (good / "manifest.json").write_text(json.dumps(manifest))
    expect = {
        "json": "bad_json", "no json": "no_json", "missing image": "no_image", "bad image": "bad_image",
        "verifier": "astrology", "missing field": "no_reward_model", "box": "inverted_box",
        "image count": "image_count", "duplicate": "duplicate id", "truncated": "cut-000000.tar",
        "garbage": "garbage-000000.tar", "manifest": "manifest lists",
    }
    return good, expect
