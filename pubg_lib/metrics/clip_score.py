"""CLIP score: image–answer alignment (higher is better: a visually grounded answer scores higher).

For the embedded world there is no pretrained CLIP that knows its photos, so we train a small one contrastively on
world photos and their ground-truth descriptions (open_clip, built from a local model config; its BPE vocabulary
ships inside the package, nothing downloads). Its retrieval accuracy on held-out photos is reported so that one can
judge how far to trust it. For real photos, `load_pretrained_clip` takes an open_clip model name and a local
checkpoint path.

The score of an (image, text) pair is the cosine similarity of their embeddings, clipped at 0 (so in [0, 1]).
"""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.tokenizer import SimpleTokenizer
from safetensors.torch import load_file, save_file

from .. import cache, paths
from ..config import check_types, to_dict
from ..io import read_json, write_json
from ..progress import tqdm

WORLD_CLIP_NAME = "pubg-world-clip"


@dataclasses.dataclass(frozen=True)
class WorldClipConfig:
    image_size: int = 48
    patch_size: int = 8
    width: int = 64
    layers: int = 2
    embed_dim: int = 64
    context_length: int = 48
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 2e-3
    seed: int = 0

    def __post_init__(self):
        check_types(self)


@dataclasses.dataclass
class ClipScorer:
    model: torch.nn.Module
    preprocess: object
    tokenizer: object
    record: dict

    @torch.no_grad()
    def embed(self, images=None, texts=None, batch_size: int = 128):
        self.model.eval()
        out = {}
        if images is not None:
            feats = [
                self.model.encode_image(torch.stack([self.preprocess(im) for im in images[i : i + batch_size]]))
                for i in range(0, len(images), batch_size)
            ]
            out["images"] = F.normalize(torch.cat(feats), dim=-1)
        if texts is not None:
            feats = [
                self.model.encode_text(self.tokenizer(list(texts[i : i + batch_size])))
                for i in range(0, len(texts), batch_size)
            ]
            out["texts"] = F.normalize(torch.cat(feats), dim=-1)
        return out

    def score(self, images, texts) -> np.ndarray:
        """CLIP score of each (image, text) pair, in [0, 1]."""
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images but {len(texts)} texts")
        if not len(images):
            return np.zeros(0)
        e = self.embed(images, texts)
        return (e["images"] * e["texts"]).sum(-1).clamp(min=0).numpy()

    def retrieval_accuracy(self, images, texts) -> float:
        """Share of images whose own text is the most similar among all texts given (top-1, image → text)."""
        e = self.embed(images, texts)
        sims = e["images"] @ e["texts"].T
        return float((sims.argmax(-1) == torch.arange(len(images))).float().mean())


def _model_config(cfg: WorldClipConfig) -> dict:
    return {
        "embed_dim": cfg.embed_dim,
        "vision_cfg": {
            "image_size": cfg.image_size,
            "layers": cfg.layers,
            "width": cfg.width,
            "patch_size": cfg.patch_size,
        },
        "text_cfg": {
            "context_length": cfg.context_length,
            "vocab_size": SimpleTokenizer().vocab_size,
            "width": cfg.width,
            "heads": 4,
            "layers": cfg.layers,
        },
    }


def _build(cfg: WorldClipConfig):
    folder = paths.cache_dir("clip", "configs")
    (folder / f"{WORLD_CLIP_NAME}.json").write_text(json.dumps(_model_config(cfg)))
    open_clip.add_model_config(folder / f"{WORLD_CLIP_NAME}.json")
    model, preprocess_train, preprocess = open_clip.create_model_and_transforms(WORLD_CLIP_NAME, pretrained=None)
    tokenizer = open_clip.get_tokenizer(WORLD_CLIP_NAME)
    return model, preprocess, tokenizer


def world_clip(dataset, cfg: WorldClipConfig | None = None, progress: bool = True) -> ClipScorer:
    """The world's CLIP, trained on seen photos and their descriptions (cached by config, dataset and code)."""
    cfg = cfg or WorldClipConfig()
    folder = cache.entry("clip", {"config": to_dict(cfg), "data": dataset.fingerprint()}, __name__)
    torch.manual_seed(cfg.seed)
    model, preprocess, tokenizer = _build(cfg)
    if (folder / "record.json").exists():
        model.load_state_dict(load_file(folder / "model.safetensors"))
        return ClipScorer(model, preprocess, tokenizer, read_json(folder / "record.json"))
    photos = dataset.photos[dataset.photos["photo_split"] == "seen"]
    images = torch.stack([preprocess(dataset.image(p)) for p in photos["photo_id"]])
    tokens = tokenizer([dataset.description(p) for p in photos["photo_id"]])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0, log = time.perf_counter(), []
    model.train()
    for _ in tqdm(range(cfg.epochs), desc="train world CLIP", disable=not progress):
        order = torch.randperm(len(images), generator=gen)
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            img, txt, scale = model(images[idx], tokens[idx])
            logits = scale * img @ txt.T
            target = torch.arange(len(idx))
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            log.append(loss.item())
    model.eval()
    val = dataset.photos[dataset.photos["photo_split"] == "val"]["photo_id"].tolist()
    scorer = ClipScorer(model, preprocess, tokenizer, {})
    record = {
        "train_seconds": time.perf_counter() - t0,
        "final_loss": float(np.mean(log[-5:])),
        "val_retrieval_accuracy": scorer.retrieval_accuracy(dataset.images(val), [dataset.description(p) for p in val]),
        "val_retrieval_chance": 1.0 / max(1, len(val)),
        "config": dataclasses.asdict(cfg),
    }

    def write(tmp):
        save_file(model.state_dict(), tmp / "model.safetensors")
        write_json(tmp / "record.json", record)  # written last: marks a finished cache entry

    cache.build(folder, write)
    scorer.record = record
    return scorer


def load_pretrained_clip(model_name: str, checkpoint: str) -> ClipScorer:
    """A pretrained open_clip model (e.g. "ViT-B-32") from a local checkpoint file: for real photos."""
    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=checkpoint)
    return ClipScorer(
        model, preprocess, open_clip.get_tokenizer(model_name), {"model": model_name, "checkpoint": checkpoint}
    )
