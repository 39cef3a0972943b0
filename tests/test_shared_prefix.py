"""One prefix, two continuations (#17 item 1): the forget half of a PUBG step with each photo and prompt computed
once gives the same losses and gradients as the two sequences computed apart, on LLaVA and LLaVA-NeXT."""

import dataclasses

import pytest
import torch
from peft import get_peft_model

from pubg_lib import losses, prompts, shared_prefix
from pubg_lib.labels import IGNORE
from pubg_lib.models import (
    LVLM,
    build_processor,
    build_tiny_llava,
    build_tokenizer,
    collate,
    encode_example,
    world_corpus,
)
from pubg_lib.reference import TeacherCache
from pubg_lib.unlearn import UnlearnConfig, _teacher_batch, lora_config


@pytest.fixture(scope="module")
def tokenizer(smoke_world):
    return build_tokenizer(world_corpus(smoke_world))


def _student(tokenizer, model_cfg, architecture):
    """A randomly initialised world LLaVA of the given architecture with a LoRA adapter whose B is not zero (so
    that the adapter's gradients are not trivially equal)."""
    cfg = dataclasses.replace(model_cfg, architecture=architecture)
    torch.manual_seed(0)
    lvlm = LVLM(build_tiny_llava(tokenizer, cfg), build_processor(tokenizer, cfg), architecture)
    model = get_peft_model(lvlm.model, lora_config(UnlearnConfig()))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    return lvlm, model


@pytest.mark.parametrize("architecture", ["llava", "llava_next"])
def test_shared_prefix_losses_and_gradients_equal_the_unshared_computation(
    architecture, tokenizer, smoke_cfgs, smoke_world
):
    lvlm, model = _student(tokenizer, smoke_cfgs[1], architecture)
    photos = smoke_world.photos["photo_id"].tolist()[:3]
    # prompts of different lengths (left padding is exercised), answers of different lengths
    queries = [prompts.PAPER_QUERY, prompts.TRAINED_IDENTITY_QUERIES[3], "who is this person ?"]
    private = [smoke_world.identity_answer(p) for p in photos]
    reference = [smoke_world.description(p) for p in photos]
    reference[1] = "the person ."
    encoded = {
        name: [encode_example(lvlm, smoke_world.image(p), q, a) for p, q, a in zip(photos, queries, answers)]
        for name, answers in (("private", private), ("reference", reference))
    }
    assert len({len(e["input_ids"]) - sum(x != IGNORE for x in e["labels"]) for e in encoded["private"]}) > 1
    # a teacher for the KL: random rows over the whole vocabulary along each reference answer
    vocab = len(tokenizer)
    gen = torch.Generator().manual_seed(1)
    rows = [
        torch.log_softmax(torch.randn(sum(x != IGNORE for x in e["labels"]), vocab, generator=gen), -1)
        for e in encoded["reference"]
    ]
    teacher = TeacherCache([torch.arange(vocab).expand(len(r), vocab) for r in rows], rows, torch.zeros(3))

    def terms(logits_private, labels_private, logits_reference, labels_reference):
        ids, logp = _teacher_batch(teacher, [0, 1, 2], labels_reference[:, 1:])
        return losses.ga_loss(logits_private, labels_private), losses.forward_kl(
            logits_reference, labels_reference, ids, logp
        )

    def gradients(total):
        model.zero_grad()
        total.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    batch = collate(encoded["private"] + encoded["reference"], tokenizer.pad_token_id, "right")
    labels = batch.pop("labels")
    logits = model(**batch).logits
    apart = terms(logits[:3], labels[:3], logits[3:], labels[3:])
    grads_apart = gradients(sum(apart))

    split = [shared_prefix.split_example(e) for e in encoded["private"]]
    answers = [[a for _, a in split], [shared_prefix.split_example(e)[1] for e in encoded["reference"]]]
    (lp, bp), (lr, br) = shared_prefix.continuation_logits(
        model, [p for p, _ in split], answers, tokenizer.pad_token_id
    )
    shared = terms(lp, bp, lr, br)
    grads_shared = gradients(sum(shared))

    for a, s in zip(apart, shared):
        assert abs(float(a.detach()) - float(s.detach())) <= 1e-5
    assert grads_apart.keys() == grads_shared.keys() and any("lora_A" in n for n in grads_apart)
    for name in grads_apart:
        torch.testing.assert_close(grads_shared[name], grads_apart[name], atol=1e-5, rtol=1e-4)


def test_an_example_splits_into_its_prompt_and_its_answer(smoke_world, tokenizer, smoke_cfgs):
    lvlm = LVLM(build_tiny_llava(tokenizer, smoke_cfgs[1]), build_processor(tokenizer, smoke_cfgs[1]), "x")
    photo = smoke_world.photos["photo_id"].iloc[0]
    full = encode_example(lvlm, smoke_world.image(photo), prompts.PAPER_QUERY, "the person .")
    prompt, answer = shared_prefix.split_example(full)
    alone = encode_example(lvlm, smoke_world.image(photo), prompts.PAPER_QUERY)
    assert prompt["input_ids"] == alone["input_ids"] and torch.equal(prompt["pixel_values"], alone["pixel_values"])
    assert answer == tokenizer("the person .", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    broken = {**full, "labels": full["labels"][:-2] + [IGNORE, full["labels"][-1]]}
    with pytest.raises(ValueError, match="one run"):
        shared_prefix.split_example(broken)


def test_every_prompt_needs_one_answer_in_each_continuation_list(smoke_world, tokenizer, smoke_cfgs):
    _, model = _student(tokenizer, smoke_cfgs[1], "llava")
    with pytest.raises(ValueError, match="one answer per prompt"):
        shared_prefix.continuation_logits(model, [{"input_ids": [1, 2]}], [[[3, 4]], []], tokenizer.pad_token_id)
