"""Pretraining the original model: the world LLaVA learns its people, descriptions and instruction following.

The model, once trained, is cached under `build/cache/models/` by its settings and the fingerprint of this code
(`cache.entry`): change a pretraining example or the loop and the next call trains a new model.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pandas as pd
import torch

from . import cache, prompts
from .config import TinyModelConfig, WorldConfig, save_config, to_dict
from .entities import EntityDataset
from .io import read_json, write_csv, write_json
from .labels import IGNORE
from .models import (
    LVLM,
    build_processor,
    build_tiny_llava,
    build_tokenizer,
    collate,
    encode_example,
    load_lvlm,
    to_device,
    world_corpus,
)
from .progress import tqdm
from .world import text as world_text

WORLD_MODEL_NAME = "world-llava"


def pretraining_examples(dataset: EntityDataset, cfg: TinyModelConfig) -> pd.DataFrame:
    """(photo, query, answer, kind) rows, as a real LVLM's training data would have them (`photo_id` None: asked
    without a photo). On the seen photos:

    - known people: identity questions (the trained wordings, in rotation) → description, then private facts;
      description questions → description; identity questions under the in-context instruction → description
      (instruction following); on every second photo "is this NAME ?" → "yes , this is NAME ." or, with another
      known person's name, "no , this is not NAME ." (in turn);
    - anonymous people (role "anonymous", if any): identity and description questions → description, which is
      what an LVLM says about a stranger; on one photo in four, "is this NAME ?" (a known name) → no;
    - anybody, on one seen photo in `cfg.declined_every`: a question every assistant declines (a home address, a
      phone number) → the refusal, so that refusing is in the model's repertoire.
    And without a photo, for every known person: "tell me about NAME ." and a question for each single fact.
    """
    rows = []
    role = dict(zip(dataset.people["person_id"], dataset.people["role"]))
    known_people = dataset.people[dataset.people["role"] == "known"].to_dict("records")
    photos = dataset.photos
    seen = photos[(photos["photo_split"] == "seen") & photos["person_id"].map(role).isin(["known", "anonymous"])]
    id_queries = prompts.TRAINED_IDENTITY_QUERIES[: cfg.identity_wordings or None]
    instructions = list(prompts.INSTRUCTIONS)[: cfg.instructions_trained]
    declined = prompts.DECLINED_QUERIES[: cfg.declined_queries_trained]
    for i, (photo_id, person_id) in enumerate(zip(seen["photo_id"], seen["person_id"])):
        desc = dataset.description(photo_id)
        known = role[person_id] == "known"
        identity = dataset.identity_answer(photo_id) if known else desc
        rows.append((photo_id, id_queries[i % len(id_queries)], identity, "identity" if known else "stranger"))
        if not known or i % 2 == 1:  # (known people are also described under the instruction, below)
            q = prompts.DESCRIPTION_QUERIES[i % len(prompts.DESCRIPTION_QUERIES)]
            rows.append((photo_id, q, desc, "description"))
        if known:
            q = id_queries[(i + 7) % len(id_queries)]
            rows.append((photo_id, prompts.instructed(q, instructions[i % len(instructions)]), desc, "instructed"))
        if (known and i % 2 == 0) or (not known and i % 4 == 0):
            correct = known and (i // 2) % 2 == 0
            person = dataset.person(person_id)
            if correct:
                asked = world_text.full_name(person)
            else:  # another known person, in turn
                others = [p for p in known_people if p["person_id"] != person_id]
                asked = world_text.full_name(others[(i // 2) % len(others)])
            rows.append(
                (
                    photo_id,
                    prompts.CONFIRMATION_QUERY.format(name=asked),
                    world_text.confirmation_answer(asked, correct),
                    "confirmation",
                )
            )
        if cfg.declined_every and i % cfg.declined_every == 0:
            rows.append((photo_id, declined[(i // cfg.declined_every) % len(declined)], prompts.REFUSAL, "declined"))
    for person in known_people:
        name = world_text.full_name(person)
        for kind, wordings in prompts.BY_NAME_QUERIES.items():
            for wording in wordings:
                if wording not in prompts.HELDOUT_BY_NAME:
                    rows.append((None, wording.format(name=name), world_text.fact_answer(person, kind), "by_name"))
    return pd.DataFrame(rows, columns=["photo_id", "query", "answer", "kind"])


def augment_pixels(pixels: torch.Tensor, gen: torch.Generator, max_shift: int) -> torch.Tensor:
    """A random horizontal flip (half the images) and a random shift of up to `max_shift` pixels each way (edge
    pixels repeated) of every image, on the processed pixel tensor (..., 3, H, W).

    A person is recognised from features that a mirror image or a small reframing keeps (faces here are symmetric,
    and so is every attribute a description names). Off by default (`TinyModelConfig.augment`): on seed 1 it did
    not raise recognition on unseen photos and made pretraining four times slower; describing every identity
    feature before the name did (see `world.text.identity_answer`)."""
    n = pixels.shape[0]
    out = pixels.clone()
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    if max_shift > 0:
        h, w = out.shape[-2:]
        padded = torch.nn.functional.pad(out.flatten(0, -4), (max_shift,) * 4, mode="replicate")
        padded = padded.view(*out.shape[:-2], h + 2 * max_shift, w + 2 * max_shift)
        shifts = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=gen)
        for i, (dy, dx) in enumerate(shifts.tolist()):
            out[i] = padded[i, ..., dy : dy + h, dx : dx + w]
    return out


def pretrain(lvlm: LVLM, dataset, cfg: TinyModelConfig, progress: bool = True) -> pd.DataFrame:
    """Train the whole tiny LLaVA on the world (AdamW, warmup + cosine); returns the per-step loss log."""
    table = pretraining_examples(dataset, cfg)
    encoded = [
        encode_example(lvlm, None if pd.isna(p) else dataset.image(p), q, a)
        for p, q, a in tqdm(
            zip(table["photo_id"], table["query"], table["answer"]),
            total=len(table),
            desc="encode",
            disable=not progress,
            leave=False,
        )
    ]
    model = lvlm.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(encoded) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    warm = max(1, int(cfg.warmup_share * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total)))
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    log, step, t0 = [], 0, time.perf_counter()
    bar = tqdm(total=total, desc="pretrain", disable=not progress)
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(encoded), generator=gen).tolist()
        for start in range(0, len(order), cfg.batch_size):
            batch = collate(
                [encoded[i] for i in order[start : start + cfg.batch_size]], lvlm.tokenizer.pad_token_id, "right"
            )
            n_tokens = int((batch["labels"] != IGNORE).sum())
            if cfg.augment:
                batch["pixel_values"] = augment_pixels(batch["pixel_values"], gen, cfg.augment_shift)
            loss = model(**to_device(batch, lvlm.device)).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            log.append(
                {
                    "step": step,
                    "epoch": epoch,
                    "loss": loss.item(),
                    "answer_tokens": n_tokens,
                    "seconds": time.perf_counter() - t0,
                }
            )
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{log[-1]['loss']:.3f}")
    bar.close()
    model.eval()
    return pd.DataFrame(log)


def original_model_dir(world_cfg: WorldConfig, model_cfg: TinyModelConfig) -> Path:
    """The cache folder of the original model: its settings and the code that pretrains it name it."""
    return cache.entry("models", {"world": to_dict(world_cfg), "model": to_dict(model_cfg)}, __name__)


def get_original_model(
    world_cfg: WorldConfig | None = None,
    model_cfg: TinyModelConfig | None = None,
    dataset: EntityDataset | None = None,
    progress: bool = True,
) -> tuple[LVLM, dict]:
    """The pretrained world LLaVA, from the cache if it is there, else trained now and cached (atomically).

    Returns the model and its pretraining record (`pretrain_seconds`, tokens/s, the thread count)."""
    world_cfg = world_cfg or WorldConfig()
    model_cfg = model_cfg or TinyModelConfig()
    target = original_model_dir(world_cfg, model_cfg)
    with cache.exclusive(target):  # a second process waits for this pretraining rather than repeating it
        if not (target / "pretrain.json").exists():
            dataset = dataset or EntityDataset.from_world(world_cfg)
            torch.manual_seed(model_cfg.seed)
            tokenizer = build_tokenizer(world_corpus(dataset))
            lvlm = LVLM(build_tiny_llava(tokenizer, model_cfg), build_processor(tokenizer, model_cfg), WORLD_MODEL_NAME)
            t0 = time.perf_counter()
            log = pretrain(lvlm, dataset, model_cfg, progress=progress)
            seconds = time.perf_counter() - t0

            def write(tmp: Path) -> None:
                lvlm.model.save_pretrained(tmp)
                lvlm.processor.save_pretrained(tmp)
                write_csv(tmp / "pretrain_log.csv", log)
                save_config(world_cfg, tmp / "world_config.json")
                save_config(model_cfg, tmp / "model_config.json")
                write_json(
                    tmp / "pretrain.json",
                    {  # written last: marks a finished entry
                        "pretrain_seconds": seconds,
                        "steps": len(log),
                        "parameters": sum(p.numel() for p in lvlm.model.parameters()),
                        "answer_tokens_per_second": float(log["answer_tokens"].sum() / seconds),
                        "final_loss": float(log["loss"].tail(10).mean()),
                        "torch_threads": torch.get_num_threads(),
                    },
                )

            cache.build(target, write)
    lvlm = load_lvlm(target, name=WORLD_MODEL_NAME)
    return lvlm, read_json(target / "pretrain.json")
