"""What a PUBG step costs on the paper's model: LLaVA-1.6 with Mistral-7B and CLIP ViT-L/14-336, built from its
shapes with random weights (nothing is downloaded), unlearned with LoRA in bf16 by the compendium's own loop.

    python benchmarks/bench_7b.py                       # the real shapes, bf16, 30 PUBG steps (needs a GPU)
    python benchmarks/bench_7b.py --size tiny --steps 2 # the same code at reduced width and depth (CPU; a test)

The photos are the embedded world's (the smoke world: two forget and two retain people) rendered at 672 px, a real
photo's resolution, and processed as LLaVA-1.6 processes any photo: anyres tiles of 336 px from the model's grid
pinpoints, so a square photo becomes the base image and a 2 × 2 grid of tiles, about 2,900 image tokens, as on the
paper's models. The reference answers and the teacher's
distributions are computed by `reference.build_unlearning_data` with the instructed model, the steps by
`unlearn.UnlearningLoop` (PUBG's settings from `data/settings/methods.json`, with the batch sizes given here), so
the cost measured is the cost of the code a user runs. Reported: seconds per step (median, after warm-up; CUDA
synchronised), peak accelerator memory, and the tokens of each step (image, prompt and answer tokens of its
forget, guidance and retain sequences). Beside the steps, PUBG's loss (forward and backward) is timed on the same
batches three ways: as the loop computes it, with each forget photo's prefix computed once for both continuations
(`pubg_lib.shared_prefix`, #17 item 1), and without the guidance term (GD's work), with the largest difference
between the shared and unshared losses. Writes data/results/bench_7b.json for the real shapes on a GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import statistics
import tempfile
import time
from pathlib import Path

# LLaVA-1.6-Mistral-7B (llava-hf/llava-v1.6-mistral-7b-hf): Mistral-7B-Instruct-v0.2 and CLIP ViT-L/14-336.
SIZES = {
    "7b": {
        "text": dict(
            vocab_size=32064,
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            max_position_embeddings=32768,
            rms_norm_eps=1e-5,
            rope_theta=1e6,
        ),
        "vision": dict(
            hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, projection_dim=768
        ),
    },
    # the same architecture and image geometry at reduced width and depth: the code path of "7b", in seconds on a CPU
    "tiny": {
        "text": dict(
            vocab_size=32064,
            hidden_size=64,
            intermediate_size=224,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=32768,
            rms_norm_eps=1e-5,
            rope_theta=1e6,
        ),
        "vision": dict(
            hidden_size=32, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2, projection_dim=32
        ),
    },
}
IMAGE_SIZE, PATCH_SIZE = 336, 14
TEACHER_BATCH = 4
GRID_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]


def build_llava_next(tokenizer, size: str, dtype, device):
    """LLaVA-1.6 (`LlavaNextForConditionalGeneration`) of `SIZES[size]` with random weights, in `dtype` on `device`,
    and its processor (anyres over `GRID_PINPOINTS`), both around the world's tokenizer."""
    import torch
    from transformers import (
        CLIPVisionConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
        MistralConfig,
    )

    from pubg_lib.models import CHAT_TEMPLATE, LVLM

    spec = SIZES[size]
    special = dict(
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id
    )
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, **spec["vision"]),
        text_config=MistralConfig(tie_word_embeddings=False, **spec["text"], **special),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=GRID_PINPOINTS,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlavaNextForConditionalGeneration(config).to(dtype)
    for key, value in special.items():
        setattr(model.generation_config, key, value)
    processor = LlavaNextProcessor(
        image_processor=LlavaNextImageProcessor(
            image_grid_pinpoints=GRID_PINPOINTS,
            size={"shortest_edge": IMAGE_SIZE},
            crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        ),
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    return LVLM(model, processor, f"llava-v1.6-mistral-{size}-random")


def shared_prefix_comparison(loop, steps: int, warmup: int, cuda: bool) -> dict:
    """PUBG's loss, forward and backward, as the loop computes it (two sequences per forget photo) and with each
    forget prefix computed once (`pubg_lib.shared_prefix`, by `bench_train_step.shared_loss_terms`), on the same
    batches, interleaved: median seconds of each, their ratio and the largest difference between their losses."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("bench_train_step", Path(__file__).with_name("bench_train_step.py"))
    step_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(step_bench)

    def timed(terms_of, f_idx, r_idx):
        if cuda:
            torch.cuda.synchronize()
        seconds, terms = step_bench.forward_backward(loop, terms_of, f_idx, r_idx)
        if cuda:
            torch.cuda.synchronize()
        return seconds, terms

    pubg = loop.cfg
    gd = dataclasses.replace(pubg, lam=0.0)  # PUBG without its guidance term computes GD's terms (GA + retain NLL)

    def gd_terms(f_idx, r_idx):
        loop.cfg = gd
        try:
            return loop.loss_terms(f_idx, r_idx)
        finally:
            loop.cfg = pubg

    times: dict[str, list[float]] = {"gd": [], "unshared": [], "shared": []}
    diff = 0.0
    for step in range(warmup + steps):
        f_idx, r_idx = loop.ex.draw("forget", pubg.forget_batch), loop.ex.draw("retain", pubg.retain_batch)
        t_gd, _ = timed(gd_terms, f_idx, r_idx)
        t_apart, apart = timed(loop.loss_terms, f_idx, r_idx)
        t_shared, shared = timed(lambda f, r: step_bench.shared_loss_terms(loop, f, r), f_idx, r_idx)
        diff = max(diff, *(abs(apart[k] - shared[k]) for k in apart))
        if step >= warmup:
            for name, t in (("gd", t_gd), ("unshared", t_apart), ("shared", t_shared)):
                times[name].append(t)
    median = {k: statistics.median(v) for k, v in times.items()}
    return {
        "forward_backward_median_seconds": median,
        "shared_over_unshared": median["shared"] / median["unshared"],
        "pubg_unshared_over_gd": median["unshared"] / median["gd"],
        "pubg_shared_over_gd": median["shared"] / median["gd"],
        "max_abs_loss_diff": diff,
    }


def run(
    size: str, steps: int, forget_batch: int, retain_batch: int, device: str, warmup: int = 2, photo_size: int = 672
) -> dict:
    """Build the model, the unlearning data and PUBG's loop, and time `steps` steps after `warmup` more."""
    import torch

    from pubg_lib import reference
    from pubg_lib.config import smoke_configs
    from pubg_lib.entities import EntityDataset, Split
    from pubg_lib.models import build_tokenizer, encode_example, world_corpus
    from pubg_lib.runs import method_settings
    from pubg_lib.unlearn import UnlearningLoop

    dataset = EntityDataset.from_world(dataclasses.replace(smoke_configs()[0], image_size=photo_size))
    known = dataset.people.loc[dataset.people["role"] == "known", "person_id"].tolist()
    split = Split(forget=tuple(known[:2]), retain=tuple(known[2:4]))
    dtype = torch.bfloat16
    t0 = time.perf_counter()
    lvlm = build_llava_next(build_tokenizer(world_corpus(dataset)), size, dtype, device)
    build_seconds = time.perf_counter() - t0
    parameters = sum(p.numel() for p in lvlm.model.parameters())
    # The teacher's distributions come from logits over every position of 4 sequences at a time: at ~3,000 tokens
    # and 32,064 words a sequence's logits and their log-softmax take ~0.8 GB (the default of 32 would take 24 GB).
    full = reference.teacher_distributions
    reference.teacher_distributions = functools.partial(full, batch_size=TEACHER_BATCH)
    t0 = time.perf_counter()
    try:
        data = reference.build_unlearning_data(lvlm, dataset, split, model_id=lvlm.name, progress=False)
    finally:
        reference.teacher_distributions = full
    data_seconds = time.perf_counter() - t0
    settings = method_settings(
        forget_batch=forget_batch, retain_batch=retain_batch, steps=warmup + steps, probe_every=0
    )["PUBG"]
    loop = UnlearningLoop(lvlm, dataset, data, settings, copy_model=False)
    trainable = sum(p.numel() for p in loop.trainable)
    photo = dataset.photos_of(split.forget, ["seen"])["photo_id"].iloc[0]
    image_tokens = encode_example(lvlm, dataset.image(photo), "x")["input_ids"].count(
        lvlm.tokenizer.convert_tokens_to_ids("<image>")
    )
    lengths = {
        kind: statistics.mean(len(e["input_ids"]) for e in examples)
        for kind, examples in (("forget", loop.ex.target), ("guidance", loop.ex.bg), ("retain", loop.ex.retain))
    }
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    for step in range(warmup + steps):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loop.step(step)
        if cuda:
            torch.cuda.synchronize()
        if step >= warmup:
            seconds.append(time.perf_counter() - t0)
    tokens = forget_batch * (lengths["forget"] + lengths["guidance"]) + retain_batch * lengths["retain"]
    median = statistics.median(seconds)
    shared = shared_prefix_comparison(loop, steps, warmup, cuda)
    return {
        "size": size,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "dtype": "bfloat16",
        "parameters": parameters,
        "lora_trainable_parameters": trainable,
        "photo_pixels": photo_size,
        "image_tokens_per_photo": image_tokens,
        "mean_sequence_tokens": lengths,
        "batch": {"forget": forget_batch, "retain": retain_batch},
        "tokens_per_step": tokens,
        "median_step_seconds": median,
        "tokens_per_second": tokens / median,
        "steps_measured": steps,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "shared_prefix": shared,
        "build_seconds": build_seconds,
        "unlearning_data_seconds": data_seconds,
        "torch": torch.__version__,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), default="7b")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--forget-batch", type=int, default=2, help="forget photos per step (the guidance batch too)")
    ap.add_argument("--retain-batch", type=int, default=2)
    ap.add_argument("--device", default=None, help="default: cuda if there is one, else cpu")
    args = ap.parse_args(argv)
    import torch

    from pubg_lib import paths
    from pubg_lib.io import write_json

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cache, paths.CACHE = paths.CACHE, Path(tempfile.mkdtemp(prefix="pubg-bench-7b-"))  # nothing of another model
    try:
        out = run(args.size, args.steps, args.forget_batch, args.retain_batch, device)
    finally:
        paths.CACHE = cache
    for key, value in out.items():
        print(f"{key:>26}: {value}")
    if args.size == "7b" and device.startswith("cuda"):
        write_json(paths.RESULTS / "bench_7b.json", out)
    return out


if __name__ == "__main__":
    main()
