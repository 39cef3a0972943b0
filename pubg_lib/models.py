"""The original LVLM: build and pretrain the tiny world LLaVA, or load any image-text-to-text model.

Everything downstream talks to a model through `LVLM` (a model + its processor) and the helpers below, which use
only what every Hugging Face LVLM has: a processor that expands image tokens, a chat template, `generate`.
Nothing assumes the tiny model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from . import prompts
from .config import ConfigError, TinyModelConfig
from .labels import IGNORE
from .progress import tqdm

SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>", "<image>")
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}user : "
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image> {% elif c['type'] == 'text' %}"
    "{{ c['text'] }} {% endif %}{% endfor %}"
    "{% else %}assistant : {% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"
    "{% endif %} </s> {% endif %}{% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)


@dataclasses.dataclass
class LVLM:
    """A vision-language model and the processor that prepares its inputs."""

    model: torch.nn.Module
    processor: object
    name: str = "lvlm"

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


# ---------------------------------------------------------------------------------------------------------------
# Building the tiny world LLaVA
# ---------------------------------------------------------------------------------------------------------------
def world_corpus(dataset) -> list[str]:
    """All text the world can produce: answers for every photo, names, fixed prompts (tokenizer training data)."""
    texts = list(prompts.all_text())
    texts += [
        " ".join(dataset.people[c].astype(str)) for c in dataset.people.columns if dataset.people[c].dtype == object
    ]
    for photo_id in dataset.photos["photo_id"]:
        texts.append(dataset.identity_answer(photo_id))
    texts.append("user : assistant :")
    return texts


def build_tokenizer(corpus: Sequence[str]):
    """A word-level tokenizer trained locally with `tokenizers`, wrapped as a `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS), min_frequency=1)
    tok.train_from_iterator(corpus, trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
        padding_side="left",
    )


def build_processor(tokenizer, cfg: TinyModelConfig):
    from transformers import CLIPImageProcessor, LlavaNextImageProcessor, LlavaNextProcessor, LlavaProcessor

    side = cfg.vision_image_size
    kwargs = dict(
        tokenizer=tokenizer,
        patch_size=cfg.vision_patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    size = dict(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    if cfg.architecture == "llava_next":  # one tile of the base resolution (anyres with a single grid point)
        return LlavaNextProcessor(
            image_processor=LlavaNextImageProcessor(image_grid_pinpoints=[[side, side]], **size), **kwargs
        )
    return LlavaProcessor(image_processor=CLIPImageProcessor(**size), **kwargs)


def build_tiny_llava(tokenizer, cfg: TinyModelConfig):
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
    )

    torch.manual_seed(cfg.seed)
    vision = CLIPVisionConfig(
        hidden_size=cfg.vision_hidden,
        intermediate_size=2 * cfg.vision_hidden,
        num_hidden_layers=cfg.vision_layers,
        num_attention_heads=cfg.vision_heads,
        image_size=cfg.vision_image_size,
        patch_size=cfg.vision_patch_size,
        projection_dim=cfg.vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.text_hidden,
        intermediate_size=cfg.text_intermediate,
        num_hidden_layers=cfg.text_layers,
        num_attention_heads=cfg.text_heads,
        num_key_value_heads=cfg.text_heads,
        max_position_embeddings=cfg.max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    n_patches = (cfg.vision_image_size // cfg.vision_patch_size) ** 2
    common = dict(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    if cfg.architecture == "llava_next":
        side = cfg.vision_image_size
        model = LlavaNextForConditionalGeneration(LlavaNextConfig(image_grid_pinpoints=[[side, side]], **common))
    else:
        model = LlavaForConditionalGeneration(LlavaConfig(image_seq_length=n_patches, **common))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


# ---------------------------------------------------------------------------------------------------------------
# Encoding, batching, generation: shared by pretraining, unlearning and evaluation, for any LVLM
# ---------------------------------------------------------------------------------------------------------------
def encode_example(lvlm: LVLM, image: Image.Image | None, query: str, answer: str | None = None) -> dict:
    """Token ids of one chat-formatted prompt (image tokens expanded; `image=None` for a text-only question) and,
    if given, the answer after it.

    The answer is tokenized on its own and appended, exactly as generation continues the prompt; `labels` are
    `labels.IGNORE` on the prompt so that losses see answer tokens only.
    """
    prompt = prompts.chat_prompt(lvlm.processor, query, image=image is not None)
    if image is None:
        enc = lvlm.processor(text=[prompt], return_tensors="pt")
    else:
        enc = lvlm.processor(images=[image], text=[prompt], return_tensors="pt")
    prompt_ids = enc["input_ids"][0].tolist()
    out = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
    if answer is None:
        out.update(input_ids=prompt_ids, labels=[IGNORE] * len(prompt_ids))
        return out
    tok = lvlm.tokenizer
    answer_ids = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    out.update(input_ids=prompt_ids + answer_ids, labels=[IGNORE] * len(prompt_ids) + answer_ids)
    return out


def collate(examples: Sequence[dict], pad_id: int, padding_side: str = "left") -> dict:
    """Pad a list of `encode_example` outputs into one batch (left padding by default, as generation needs)."""
    width = max(len(e["input_ids"]) for e in examples)
    ids, labels, mask = [], [], []
    for e in examples:
        n = width - len(e["input_ids"])
        pad, lpad, mpad = [pad_id] * n, [IGNORE] * n, [0] * n
        ones = [1] * len(e["input_ids"])
        if padding_side == "left":
            ids.append(pad + e["input_ids"])
            labels.append(lpad + e["labels"])
            mask.append(mpad + ones)
        else:
            ids.append(e["input_ids"] + pad)
            labels.append(e["labels"] + lpad)
            mask.append(ones + mpad)
    batch = {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask), "labels": torch.tensor(labels)}
    extra = dict.fromkeys(k for e in examples for k in e if k not in batch)  # pixel_values, image_sizes, ...
    for key in extra:  # the images of the examples that have one, in order (the model scatters them by image token)
        batch[key] = torch.cat([e[key] for e in examples if key in e], dim=0)
    return batch


def to_device(batch: dict, device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


@torch.no_grad()
def generate(
    lvlm: LVLM,
    images: Sequence[Image.Image],
    queries: Sequence[str] | str,
    *,
    max_new_tokens: int = prompts.MAX_ANSWER_TOKENS,
    batch_size: int = 64,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int | None = None,
    progress: bool = True,
    desc: str = "generate",
) -> list[str]:
    """Batched generation with left padding; returns the decoded answers (special tokens removed). An image may be
    None: that question is asked without a photo (text only)."""
    if isinstance(queries, str):
        queries = [queries] * len(images)
    if len(queries) != len(images):
        raise ValueError(f"{len(images)} images but {len(queries)} queries")
    model = lvlm.model
    was_training = model.training
    model.eval()
    if seed is not None:
        torch.manual_seed(seed)
    tok = lvlm.tokenizer
    answers: list[str] = []
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc=desc, disable=not progress or len(starts) < 2, leave=False):
        exs = [
            encode_example(lvlm, im, q)
            for im, q in zip(images[start : start + batch_size], queries[start : start + batch_size])
        ]
        batch = to_device(collate(exs, tok.pad_token_id, "left"), lvlm.device)
        batch.pop("labels")
        kwargs = dict(
            do_sample=do_sample,
            max_new_tokens=max_new_tokens,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        if do_sample:
            kwargs.update(temperature=temperature, top_k=0, top_p=1.0)
        out = model.generate(**batch, **kwargs)
        new = out[:, batch["input_ids"].shape[1] :]
        answers += [a.strip() for a in tok.batch_decode(new, skip_special_tokens=True)]
    model.train(was_training)
    return answers


def load_lvlm(
    id_or_path: str | Path,
    *,
    dtype: torch.dtype | str | None = None,
    device_map=None,
    trust_remote_code: bool = False,
    name: str | None = None,
) -> LVLM:
    """Load any image-text-to-text model and its processor by Hugging Face id or local path (offline-safe:
    nothing downloads when HF_HUB_OFFLINE=1). Weights load from safetensors only."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if not isinstance(trust_remote_code, bool):  # the string "false" is truthy: only a real boolean may say yes
        raise ConfigError(
            f"trust_remote_code must be True or False, got {type(trust_remote_code).__name__} {trust_remote_code!r}"
        )
    if isinstance(dtype, str) and not isinstance(getattr(torch, dtype, None), torch.dtype):
        raise ConfigError(f"unknown dtype {dtype!r}; use e.g. 'float32', 'float16' or 'bfloat16'")
    kwargs = dict(trust_remote_code=trust_remote_code, use_safetensors=True)
    if dtype is not None:
        kwargs["dtype"] = dtype
    if device_map is not None:
        kwargs["device_map"] = device_map
    model = AutoModelForImageTextToText.from_pretrained(str(id_or_path), **kwargs)
    processor = AutoProcessor.from_pretrained(str(id_or_path), trust_remote_code=trust_remote_code)
    tok = processor.tokenizer
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    model.eval()
    return LVLM(model, processor, name or Path(str(id_or_path)).name)
