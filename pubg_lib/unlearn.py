"""The LoRA unlearning loop shared by every method, with per-step dynamics and a run record.

One step = one forward/backward over a single padded batch that holds every example the method needs this step
(forget examples with the registry entry's target, reference answers for the guidance term, retain examples), so
that methods differ only in which slices of the batch enter the loss and how. The teacher of the behaviour-guidance
term (and of the retain KL) is read from the cache built by `reference.build_unlearning_data`; it is never run
inside the loop. Saving and loading runs is `runs.py`'s job; the command line is `cli.py`'s.

The loop runs through an `accelerate.Accelerator`: in one process it is the plain loop; under
`accelerate launch --num_processes N` every process draws the same step batch and trains on its own slice of it
(process k takes examples k, k + N, ...), gradients are averaged across processes, and only the main process
writes.
"""

from __future__ import annotations

import copy
import json
import math
import platform
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import peft
import torch
import transformers
from accelerate import Accelerator
from peft import LoraConfig, get_peft_model

from . import cache, losses, paths
from .config import ConfigError, check_types, from_dict, to_dict
from .labels import IGNORE
from .methods import TARGETS, ForgetContext, get_method
from .models import LVLM, collate, encode_example, to_device
from .progress import tqdm
from .reference import TeacherCache

# peft reads transformers' deprecated `is_gradient_checkpointing` on every LoRA model it builds: one FutureWarning
# per run that says nothing about this code (it would fill the executed notebooks). Only that message is silenced.
warnings.filterwarnings("ignore", message=r".*`is_gradient_checkpointing` is deprecated", category=FutureWarning)


@dataclass(frozen=True)
class UnlearnConfig:
    """Settings of one unlearning run. Every weight must be >= 0; the method must be in the registry."""

    method: str = "PUBG"
    steps: int = 30
    learning_rate: float = 1e-3
    lam: float = 1.0  # λ, weight of the behaviour-guidance KL
    gamma: float = 1.0  # γ, weight of the retain term
    retain_loss: str = "nll"  # "nll" on the original model's retain answers, or "kl" from the original model
    npo_beta: float = 0.1
    forget_batch: int = 8
    retain_batch: int = 8
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    lora_scope: str = "language_model"  # only modules whose name contains this (the LLM, not the vision tower)
    lr_schedule: str = "constant"  # "constant", or "cosine" decay to 0 over the steps
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0  # 0: no clipping
    probe_every: int = 1  # log forget/retain answer log-probs on a fixed probe batch every k steps (0: first/last)
    seed: int = 0

    def __post_init__(self):
        check_types(self)  # NaN, 1.5 steps, "1e-3" or "false" fail here, by name
        get_method(self.method)  # raises with the list of methods
        for name in ("learning_rate", "lam", "gamma", "npo_beta", "weight_decay", "max_grad_norm", "lora_dropout"):
            if getattr(self, name) < 0:
                raise ConfigError(f"UnlearnConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("steps", "forget_batch", "retain_batch", "lora_rank", "lora_alpha"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"UnlearnConfig.{name} must be positive, got {getattr(self, name)}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"UnlearnConfig.lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.retain_loss not in ("nll", "kl"):
            raise ConfigError(f"UnlearnConfig.retain_loss must be 'nll' or 'kl', got {self.retain_loss!r}")
        if self.npo_beta == 0:
            raise ConfigError("UnlearnConfig.npo_beta must be positive")
        if self.probe_every < 0:
            raise ConfigError(f"UnlearnConfig.probe_every must be >= 0, got {self.probe_every}")
        if not self.lora_targets:
            raise ConfigError("UnlearnConfig.lora_targets must name at least one module")
        if self.lora_dropout >= 1:
            raise ConfigError(f"UnlearnConfig.lora_dropout must be < 1, got {self.lora_dropout}")

    @classmethod
    def from_json(cls, path) -> UnlearnConfig:
        return from_dict(cls, json.loads(Path(path).read_text()))


class UnlearningDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good adapter was kept."""


@dataclass
class UnlearnRun:
    lvlm: LVLM  # the unlearned model (base + LoRA adapter)
    dynamics: pd.DataFrame  # one row per step
    record: dict
    out_dir: Path | None
    accelerator: object | None = None  # the run's accelerate.Accelerator (who is the main process)


def lora_config(cfg: UnlearnConfig) -> LoraConfig:
    pattern = rf".*{cfg.lora_scope}.*\.({'|'.join(cfg.lora_targets)})$"
    return LoraConfig(
        r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=pattern, bias="none"
    )


class _Examples:
    """All training examples of a run, encoded once, with index samplers that cycle through seeded permutations."""

    def __init__(
        self, lvlm, dataset, data, cfg: UnlearnConfig, with_teacher_inputs: bool = False, cache: dict | None = None
    ):
        method = get_method(cfg.method)
        forget, retain = data.forget.to_dict("records"), data.retain.to_dict("records")

        def enc(p, q, a):  # `cache` (photo, query, answer) -> encoded example lets consecutive runs share the work
            if cache is None:
                return encode_example(lvlm, dataset.image(p), q, a)
            if (p, q, a) not in cache:
                cache[(p, q, a)] = encode_example(lvlm, dataset.image(p), q, a)
            return cache[(p, q, a)]

        # the private answers are always encoded: the probe follows their likelihood whatever the method
        self.private = [enc(r["photo_id"], r["query"], r["private_answer"]) for r in forget]
        self.target = None
        if method.target is not None:
            answer = TARGETS[method.target]
            self.target = [enc(r["photo_id"], r["query"], answer(r)) for r in forget]
        self.bg = self.bg_teacher_inputs = None
        if method.uses_bg:
            self.bg = [enc(r["photo_id"], r["query"], r["reference_answer"]) for r in forget]
            if with_teacher_inputs:
                self.bg_teacher_inputs = [enc(r["photo_id"], r["teacher_query"], r["reference_answer"]) for r in forget]
        self.retain = [enc(r["photo_id"], r["query"], r["answer"]) for r in retain]
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self._queues: dict[str, list[int]] = {"forget": [], "retain": []}

    def draw(self, pool: str, n: int) -> list[int]:
        size = len(self.private) if pool == "forget" else len(self.retain)
        out = []
        while len(out) < min(n, size):
            if not self._queues[pool]:
                self._queues[pool] = torch.randperm(size, generator=self.gen).tolist()
            out.append(self._queues[pool].pop())
        return out


def _teacher_batch(teacher: TeacherCache, indices, shifted_labels: torch.Tensor):
    """Scatter cached teacher rows onto the answer positions of a (right-padded) batch: (B, T-1, k) tensors."""
    k = teacher.ids[indices[0]].shape[-1]
    B, T = shifted_labels.shape
    ids = torch.zeros(B, T, k, dtype=torch.int64)
    logp = torch.full((B, T, k), -math.log(k))
    for row, idx in enumerate(indices):
        pos = (shifted_labels[row] != IGNORE).nonzero().squeeze(-1)
        if len(pos) != teacher.ids[idx].shape[0]:
            raise RuntimeError(f"teacher cache has {teacher.ids[idx].shape[0]} answer positions, batch has {len(pos)}")
        ids[row, pos] = teacher.ids[idx].long()
        logp[row, pos] = teacher.logprobs[idx]
    return ids, logp


def _lora_state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}


class UnlearningLoop:
    """One unlearning run, step by step: the LoRA-wrapped model, its optimiser and its examples.

    `teacher="cache"` reads the behaviour-guidance teacher from `data` (the implementation); `teacher="recompute"`
    runs the prompted original model (adapter disabled) on every step instead: the naive way, kept only so that
    `benchmarks/bench_train_step.py` can measure what the cache saves.
    """

    def __init__(
        self,
        lvlm: LVLM,
        dataset,
        data,
        cfg: UnlearnConfig,
        copy_model: bool = True,
        teacher: str = "cache",
        accelerator=None,
        example_cache: dict | None = None,
    ):
        if teacher not in ("cache", "recompute"):
            raise ValueError(f"teacher must be 'cache' or 'recompute', got {teacher!r}")
        self.cfg, self.data, self.teacher = cfg, data, teacher
        self.method = get_method(cfg.method)
        torch.manual_seed(cfg.seed)
        base = copy.deepcopy(lvlm.model) if copy_model else lvlm.model
        self.accelerator = accelerator or Accelerator()
        n = self.accelerator.num_processes
        if n > 1 and min(cfg.forget_batch, cfg.retain_batch) < n:
            raise ConfigError(
                f"{n} processes split each step's batch, so forget_batch ({cfg.forget_batch}) and "
                f"retain_batch ({cfg.retain_batch}) must each be at least {n}"
            )
        self.peft_model = get_peft_model(base, lora_config(cfg))  # unwrapped: for saving, disabling, restoring
        self.pad_id = lvlm.tokenizer.pad_token_id
        self.ex = _Examples(lvlm, dataset, data, cfg, with_teacher_inputs=teacher == "recompute", cache=example_cache)
        self.trainable = [p for p in self.peft_model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(self.trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        decay = (
            (lambda s: 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)))
            if cfg.lr_schedule == "cosine"
            else (lambda s: 1.0)
        )
        # the schedule counts optimisation steps (not prepared: accelerate would advance it once per process)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(opt, decay)
        self.model, self.opt = self.accelerator.prepare(self.peft_model, opt)
        self.device = (
            self.accelerator.device
            if getattr(self.peft_model, "hf_device_map", None) is None
            else next(self.peft_model.parameters()).device
        )
        probe_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.probe_f = torch.randperm(len(self.ex.private), generator=probe_gen)[: cfg.forget_batch].tolist()
        self.probe_r = torch.randperm(len(self.ex.retain), generator=probe_gen)[: cfg.retain_batch].tolist()
        self.good_state = _lora_state(self.peft_model)
        self.model.train()

    def shard(self, indices: list[int]) -> list[int]:
        """This process's slice of the step's examples (all of them in a single process)."""
        n, k = self.accelerator.num_processes, self.accelerator.process_index
        return indices[k::n] if n > 1 else indices

    def _bg_teacher(self, f_idx, lb):
        if self.teacher == "cache":
            return _teacher_batch(self.data.bg_teacher, f_idx, lb[:, 1:].cpu())
        batch = collate([self.ex.bg_teacher_inputs[i] for i in f_idx], self.pad_id, "right")
        labels = batch.pop("labels")
        with torch.no_grad(), self.peft_model.disable_adapter():
            logits = self.peft_model(**to_device(batch, self.device)).logits
        ids, logp = losses.topk_teacher(logits, labels.to(logits.device), self.data.settings.get("topk"))
        rows = [(ids[i][labels[i, 1:] != IGNORE], logp[i][labels[i, 1:] != IGNORE]) for i in range(len(f_idx))]
        fresh = TeacherCache([r[0] for r in rows], [r[1] for r in rows], torch.zeros(len(rows)))
        return _teacher_batch(fresh, list(range(len(rows))), lb[:, 1:].cpu())

    def loss_terms(self, f_idx, r_idx) -> dict:
        """One combined forward over every example the method needs; each weighted loss term and the total."""
        cfg, method, ex = self.cfg, self.method, self.ex
        parts: list[tuple[str, list[dict]]] = []
        if method.loss is not None:
            parts.append(("forget", [ex.target[i] for i in f_idx]))
        if method.uses_bg and cfg.lam > 0:
            parts.append(("bg", [ex.bg[i] for i in f_idx]))
        if method.uses_retain and cfg.gamma > 0:
            parts.append(("retain", [ex.retain[i] for i in r_idx]))
        batch = collate([e for _, group in parts for e in group], self.pad_id, "right")
        labels = batch.pop("labels")
        logits = self.model(**to_device(batch, self.device)).logits
        labels = labels.to(logits.device)
        terms, start = {}, 0
        for name, group in parts:
            sl = slice(start, start + len(group))
            start += len(group)
            lg, lb = logits[sl], labels[sl]
            if name == "forget":
                context = ForgetContext(ref_logprob=self.data.forget_ref_logprob[f_idx], config=cfg)
                terms[method.term] = method.loss(lg, lb, context)
            elif name == "bg":
                t_ids, t_logp = self._bg_teacher(f_idx, lb)
                terms["bg_kl"] = cfg.lam * losses.forward_kl(lg, lb, t_ids.to(lg.device), t_logp.to(lg.device))
            elif cfg.retain_loss == "nll":
                terms["retain_nll"] = cfg.gamma * losses.nll_loss(lg, lb)
            else:
                t_ids, t_logp = _teacher_batch(self.data.retain_teacher, r_idx, lb[:, 1:].cpu())
                terms["retain_kl"] = cfg.gamma * losses.forward_kl(lg, lb, t_ids.to(lg.device), t_logp.to(lg.device))
        terms["total"] = sum(terms.values())
        return terms

    def step(self, step: int, last_good_dir: Path | None = None) -> dict:
        """One optimisation step; returns its dynamics row. A non-finite loss restores the last good adapter
        (saved to `last_good_dir` if given) and raises `UnlearningDiverged`."""
        cfg = self.cfg
        f_idx, r_idx = self.ex.draw("forget", cfg.forget_batch), self.ex.draw("retain", cfg.retain_batch)
        f_idx, r_idx = self.shard(f_idx), self.shard(r_idx)
        t0 = time.perf_counter()
        terms = self.loss_terms(f_idx, r_idx)
        finite = torch.isfinite(terms["total"].detach()).float().reshape(1)
        if self.accelerator.num_processes > 1:  # every process stops together, or the others would wait forever
            finite = (
                self.accelerator.reduce(finite.to(self.accelerator.device), reduction="sum")
                / self.accelerator.num_processes
            )
        if float(finite) < 1:
            self.peft_model.load_state_dict(self.good_state, strict=False)
            where = ""
            if last_good_dir is not None and self.accelerator.is_main_process:
                self.peft_model.save_pretrained(last_good_dir)
                where = f" and saved to {last_good_dir}"
            values = {k: float(v.detach()) for k, v in terms.items()}
            raise UnlearningDiverged(
                f"{cfg.method}: loss became {values['total']} at step {step} (terms {values}); "
                f"the last good adapter was restored{where}"
            )
        self.opt.zero_grad(set_to_none=True)
        self.accelerator.backward(terms["total"])
        limit = cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf")
        grad_norm = self.accelerator.clip_grad_norm_(self.trainable, limit)
        self.opt.step()
        self.schedule.step()
        self.good_state = _lora_state(self.peft_model)
        row = {k: float(v.detach()) for k, v in terms.items()}
        row.update(grad_norm=float(grad_norm), step_seconds=time.perf_counter() - t0)
        return row

    @torch.no_grad()
    def probe(self) -> dict:
        """Token-mean log-likelihood of the private answers and retain answers on a fixed probe batch."""
        was = self.model.training
        self.model.eval()
        out = {}
        for name, group in (
            ("forget_logprob", [self.ex.private[i] for i in self.probe_f]),
            ("retain_logprob", [self.ex.retain[i] for i in self.probe_r]),
        ):
            batch = collate(group, self.pad_id, "right")
            labels = batch.pop("labels").to(self.device)
            logits = self.model(**to_device(batch, self.device)).logits
            out[name] = float(losses.sequence_logprob(logits, labels).mean())
        self.model.train(was)
        return out


# A forget log-likelihood this far below that of a uniform guess over the vocabulary (nats per token), or a retain
# log-likelihood that fell this much, means the model no longer answers sensibly: gradient ascent has run away.
COLLAPSE_FORGET_MARGIN = 5.0
COLLAPSE_RETAIN_DROP = 2.0


def collapse_diagnostics(dynamics: pd.DataFrame, vocab_size: int) -> dict:
    """Whether a run collapsed, from its first and last probes (token-mean log-likelihoods, nats per token).

    `collapsed` is true when the private answers fell more than `COLLAPSE_FORGET_MARGIN` nats/token below a uniform
    guess over the vocabulary (log 1/V), or the retain answers lost more than `COLLAPSE_RETAIN_DROP` nats/token, or
    a gradient norm was not finite. Such a run is still saved (GA's collapse is a result, not an error), but its
    record says so."""
    probes = dynamics.dropna(subset=["forget_logprob", "retain_logprob"])
    first, last = probes.iloc[0], probes.iloc[-1]
    uniform = -math.log(vocab_size)
    reasons = []
    if last["forget_logprob"] < uniform - COLLAPSE_FORGET_MARGIN:
        reasons.append(
            f"forget log-likelihood {last['forget_logprob']:.1f} nats/token is far below a uniform "
            f"guess ({uniform:.1f})"
        )
    if first["retain_logprob"] - last["retain_logprob"] > COLLAPSE_RETAIN_DROP:
        reasons.append(
            f"retain log-likelihood fell from {first['retain_logprob']:.2f} to {last['retain_logprob']:.2f} nats/token"
        )
    if "grad_norm" in dynamics and not dynamics["grad_norm"].dropna().map(math.isfinite).all():
        reasons.append("a gradient norm was not finite")
    return {
        "collapsed": bool(reasons),
        "reasons": reasons,
        "forget_logprob_start": float(first["forget_logprob"]),
        "forget_logprob_end": float(last["forget_logprob"]),
        "retain_logprob_start": float(first["retain_logprob"]),
        "retain_logprob_end": float(last["retain_logprob"]),
        "uniform_logprob": uniform,
    }


def unlearn(
    lvlm: LVLM,
    dataset,
    data,
    cfg: UnlearnConfig,
    *,
    copy_model: bool = True,
    progress: bool = True,
    step_callback=None,
    accelerator=None,
    example_cache: dict | None = None,
    last_good_dir: Path | None = None,
) -> UnlearnRun:
    """Unlearn with LoRA. `data` comes from `reference.build_unlearning_data`; `runs.train_and_save` and
    `runs.cached_run` save the result.

    `copy_model=True` (the default) wraps a copy so that `lvlm` stays the original; pass False for large models
    (the given model is then wrapped in place). `step_callback(step, peft_model)` may return a dict of extra
    columns for that step's dynamics row (used for evaluation during training); it is called before each step and
    once after the last. `accelerator`: an `accelerate.Accelerator` (default: a new one, which is the plain loop in
    a single process; see the module docstring for several). `example_cache`: a dict that keeps encoded examples
    (photo, query, answer) between runs on the same data; the caller owns it and its memory.
    """
    t0 = time.perf_counter()
    loop = UnlearningLoop(
        lvlm, dataset, data, cfg, copy_model=copy_model, accelerator=accelerator, example_cache=example_cache
    )
    rows = []
    for step in tqdm(
        range(cfg.steps + 1),
        desc=f"unlearn {cfg.method}",
        disable=not (progress and loop.accelerator.is_main_process),
        leave=False,
    ):
        row = {"step": step}
        if step in (0, cfg.steps) or (cfg.probe_every and step % cfg.probe_every == 0):
            row.update(loop.probe())  # always at the start and the end: the collapse diagnostics need both
        if step_callback is not None:
            row.update(step_callback(step, loop.peft_model) or {})
        if step < cfg.steps:
            row.update(loop.step(step, last_good_dir))
        rows.append(row)
    model = loop.peft_model
    model.eval()
    dynamics = pd.DataFrame(rows)
    record = run_record(cfg, dataset, data, lvlm, time.perf_counter() - t0)
    record.update(
        processes=loop.accelerator.num_processes,
        diagnostics=collapse_diagnostics(dynamics, vocab_size=len(lvlm.tokenizer)),
    )
    return UnlearnRun(
        LVLM(model, lvlm.processor, f"{lvlm.name}+{cfg.method}"), dynamics, record, None, loop.accelerator
    )


def base_model_reference(name_or_path: str) -> str:
    """How a run names its base model: a hub id as it is; a local folder inside the cache as `cache:<relative
    path>` (resolved against `PUBG_CACHE`); any other local folder by its absolute path (the user's own)."""
    path = Path(name_or_path)
    if not path.is_absolute():
        return str(name_or_path)
    try:
        return "cache:" + path.resolve().relative_to(paths.CACHE.resolve()).as_posix()
    except ValueError:
        return str(path)


def base_model_fingerprint(name_or_path: str) -> str:
    """A cheap fingerprint of a local base model (its config and the names and sizes of its files; reading every
    weight of a 7B model would take minutes); a hub id stands for itself."""
    path = Path(name_or_path)
    if not path.is_dir():
        return cache.digest({"id": str(name_or_path)})
    files = {p.relative_to(path).as_posix(): p.stat().st_size for p in sorted(path.rglob("*")) if p.is_file()}
    config = (path / "config.json").read_text() if (path / "config.json").exists() else ""
    return cache.digest({"files": files, "config": config})


def run_record(cfg: UnlearnConfig, dataset, data, lvlm, seconds: float) -> dict:
    base = str(getattr(lvlm.model.config, "_name_or_path", "") or lvlm.name)
    return {
        "config": to_dict(cfg),
        "seed": cfg.seed,
        "method": cfg.method,
        "wall_seconds": seconds,
        "data_hash": dataset.fingerprint(),
        "reference_settings": data.settings,
        "base_model": base_model_reference(base),
        "base_model_fingerprint": base_model_fingerprint(base),
        "forget": list(data.forget["person_id"].unique()) if "person_id" in data.forget else [],
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "python": platform.python_version(),
        },
    }


if __name__ == "__main__":  # `python -m pubg_lib.unlearn --config ...` keeps working; the command line is cli.py's
    from .cli import main

    main()
