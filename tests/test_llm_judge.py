import math

import pytest

from pubg_lib.evaluate import answer_table
from pubg_lib.metrics.llm_judge import TEMPLATES, LLMJudge, agreement, parse_score


@pytest.mark.parametrize(
    "text, lo, hi, expected",
    [
        ("4", 1, 5, 4.0),
        ("Score: 4/5", 1, 5, 4.0),
        ("**3**", 1, 5, 3.0),
        ("I'd say four.", 1, 5, 4.0),
        ("0", 0, 1, 0.0),
        ("1 (nothing private)", 0, 1, 1.0),
        ("8/10", 1, 5, 1 + 4 * 0.8),
        ("rating 7, I mean 2", 1, 5, 2.0),
        ("3.5", 1, 5, 3.5),
    ],
)
def test_parse_score_reads_common_reply_shapes(text, lo, hi, expected):
    assert parse_score(text, lo, hi) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "no idea", "9", "-", "the the the"])
def test_parse_score_gives_nan_when_there_is_no_score(text):
    assert math.isnan(parse_score(text, 1, 5))


def test_templates_take_the_fields_they_are_given():
    for t in TEMPLATES.values():
        t.format(query="q", answer="a", name="n", profession="p", birthplace="b")


def test_lvlm_judge_plumbing_on_the_tiny_model(smoke_lvlm, smoke_world):
    """The tiny world model is no judge; this checks that any LVLM can be plugged in and scored end to end."""
    table = answer_table(smoke_lvlm, smoke_world, smoke_world.photos["photo_id"][:4], progress=False)
    judged = LLMJudge(smoke_lvlm).judge(smoke_world, table)
    for axis in ("privacy", "inform", "hall"):
        assert f"llm_{axis}" in judged and f"llm_{axis}_reply" in judged
    stats = agreement(judged)
    assert all(0 <= s["parsed_share"] <= 1 for s in stats.values())


def test_text_only_judge_loads_by_path(tmp_path, smoke_lvlm):
    """A causal LM saved like a hub model loads through `from_pretrained` and answers every axis."""
    import copy

    from transformers import LlamaConfig, LlamaForCausalLM

    tok = copy.deepcopy(smoke_lvlm.tokenizer)  # the session's model keeps its own
    tok.chat_template = "{% for m in messages %}user : {{ m['content'] }} {% endfor %}assistant :"
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            pad_token_id=tok.pad_token_id,
        )
    )
    model.save_pretrained(tmp_path / "judge")
    tok.save_pretrained(tmp_path / "judge")
    judge = LLMJudge.from_pretrained(str(tmp_path / "judge"))
    assert not judge.multimodal
    replies = judge._ask([None, None], ["rate this answer .", "is it private ?"])
    assert len(replies) == 2 and all(isinstance(r, str) for r in replies)
