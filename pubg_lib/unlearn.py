"""The LoRA unlearning loop shared by every method, with per-step dynamics and a saved, recorded adapter.

One step = one forward/backward over a single padded batch that holds every example the method needs this step
(forget examples with their targets, and retain examples), so that methods differ only in which slices of the
batch enter the loss. The teacher of the behaviour-guidance term (and of the retain KL) is read from the cache
built by `reference.build_unlearning_data`; it is never run inside the loop.

The loop runs through an `accelerate.Accelerator`: in one process it is the plain loop; under
`accelerate launch --num_processes N` every process draws the same step batch and trains on its own slice of it
(process k takes examples k, k + N, ...), gradients are averaged across processes, and only the main process
writes the run.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from . import losses, prompts
from .config import ConfigError, check_types, from_dict, to_dict
from .io import read_json, replace_dir, staging_dir, write_csv, write_json
from .methods import get_method
from .models import LVLM, collate, encode_example, to_device


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
    max_grad_norm: float = 1.0
    probe_every: int = 1  # log forget/retain answer log-probs on a fixed probe batch every k steps (0: never)
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


def lora_config(cfg: UnlearnConfig):
    from peft import LoraConfig

    pattern = rf".*{cfg.lora_scope}.*\.({'|'.join(cfg.lora_targets)})$"
    return LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=pattern, bias="none")


class _Examples:
    """All training examples of a run, encoded once, with index samplers that cycle through seeded permutations."""

    def __init__(self, lvlm, dataset, data, cfg: UnlearnConfig, with_teacher_inputs: bool = False,
                 cache: dict | None = None):
        method = get_method(cfg.method)
        forget, retain = data.forget, data.retain

        def enc(p, q, a):  # `cache` (photo, query, answer) -> encoded example lets consecutive runs share the work
            if cache is None:
                return encode_example(lvlm, dataset.image(p), q, a)
            if (p, q, a) not in cache:
                cache[(p, q, a)] = encode_example(lvlm, dataset.image(p), q, a)
            return cache[(p, q, a)]

        self.private = [enc(p, q, a) for p, q, a in zip(forget["photo_id"], forget["query"], forget["private_answer"])]
        self.target = None
        if method.forget_term == "random":
            self.target = [enc(p, q, a) for p, q, a in zip(forget["photo_id"], forget["query"], forget["random_answer"])]
        elif method.forget_term == "refusal":
            self.target = [enc(p, q, prompts.REFUSAL) for p, q in zip(forget["photo_id"], forget["query"])]
        self.bg = self.bg_teacher_inputs = None
        if method.uses_bg:
            self.bg = [enc(p, q, a) for p, q, a in zip(forget["photo_id"], forget["query"], forget["reference_answer"])]
            if with_teacher_inputs:
                self.bg_teacher_inputs = [enc(p, q, a) for p, q, a in
                                          zip(forget["photo_id"], forget["teacher_query"], forget["reference_answer"])]
        self.retain = [enc(p, q, a) for p, q, a in zip(retain["photo_id"], retain["query"], retain["answer"])]
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


def _teacher_batch(cache, indices, shifted_labels: torch.Tensor):
    """Scatter cached teacher rows onto the answer positions of a (right-padded) batch: (B, T-1, k) tensors."""
    k = cache.ids[indices[0]].shape[-1]
    B, T = shifted_labels.shape
    ids = torch.zeros(B, T, k, dtype=torch.int64)
    logp = torch.full((B, T, k), -torch.log(torch.tensor(float(k))).item())
    for row, idx in enumerate(indices):
        pos = (shifted_labels[row] != -100).nonzero().squeeze(-1)
        if len(pos) != cache.ids[idx].shape[0]:
            raise RuntimeError(f"teacher cache has {cache.ids[idx].shape[0]} answer positions, batch has {len(pos)}")
        ids[row, pos] = cache.ids[idx].long()
        logp[row, pos] = cache.logprobs[idx]
    return ids, logp


def _lora_state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}


class Trainer:
    """One unlearning run, step by step: the LoRA-wrapped model, its optimiser and its examples.

    `teacher="cache"` reads the behaviour-guidance teacher from `data` (the implementation); `teacher="recompute"`
    runs the prompted original model (adapter disabled) on every step instead: the naive way, kept only so that
    `benchmarks/bench_train_step.py` can measure what the cache saves.
    """

    def __init__(self, lvlm: LVLM, dataset, data, cfg: UnlearnConfig, copy_model: bool = True,
                 teacher: str = "cache", accelerator=None, example_cache: dict | None = None):
        from accelerate import Accelerator
        from peft import get_peft_model

        if teacher not in ("cache", "recompute"):
            raise ValueError(f"teacher must be 'cache' or 'recompute', got {teacher!r}")
        self.cfg, self.data, self.teacher = cfg, data, teacher
        self.method = get_method(cfg.method)
        torch.manual_seed(cfg.seed)
        base = copy.deepcopy(lvlm.model) if copy_model else lvlm.model
        self.accelerator = accelerator or Accelerator()
        n = self.accelerator.num_processes
        if n > 1 and min(cfg.forget_batch, cfg.retain_batch) < n:
            raise ConfigError(f"{n} processes split each step's batch, so forget_batch ({cfg.forget_batch}) and "
                              f"retain_batch ({cfg.retain_batch}) must each be at least {n}")
        self.peft_model = get_peft_model(base, lora_config(cfg))  # unwrapped: for saving, disabling, restoring
        self.pad_id = lvlm.tokenizer.pad_token_id
        self.ex = _Examples(lvlm, dataset, data, cfg, with_teacher_inputs=teacher == "recompute", cache=example_cache)
        self.trainable = [p for p in self.peft_model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(self.trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        decay = (lambda s: 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps))) if cfg.lr_schedule == "cosine" \
            else (lambda s: 1.0)
        # the schedule counts optimisation steps (not prepared: accelerate would advance it once per process)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(opt, decay)
        self.model, self.opt = self.accelerator.prepare(self.peft_model, opt)
        self.device = self.accelerator.device if getattr(self.peft_model, "hf_device_map", None) is None \
            else next(self.peft_model.parameters()).device
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
        rows = [(ids[i][labels[i, 1:] != -100], logp[i][labels[i, 1:] != -100]) for i in range(len(f_idx))]
        from .reference import TeacherCache

        cache = TeacherCache([r[0] for r in rows], [r[1] for r in rows], torch.zeros(len(rows)))
        return _teacher_batch(cache, list(range(len(rows))), lb[:, 1:].cpu())

    def loss_terms(self, f_idx, r_idx) -> dict:
        """One combined forward over every example the method needs; each weighted loss term and the total."""
        cfg, method, ex = self.cfg, self.method, self.ex
        parts: list[tuple[str, list[dict]]] = []
        if method.forget_term in ("ga", "npo"):
            parts.append(("forget", [ex.private[i] for i in f_idx]))
        elif method.forget_term in ("random", "refusal"):
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
                if method.forget_term == "ga":
                    terms["ga"] = losses.ga_loss(lg, lb)
                elif method.forget_term == "npo":
                    ref = self.data.forget_ref_logprob[f_idx].to(lg.device)
                    terms["npo"] = losses.npo_loss(lg, lb, ref, cfg.npo_beta)
                else:
                    terms[f"nll_{method.forget_term}"] = losses.nll_loss(lg, lb)
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

    def step(self, step: int, out_dir: Path | None = None) -> dict:
        """One optimisation step; returns its dynamics row. A non-finite loss restores the last good adapter
        (saved to `out_dir/adapter_last_good` if given) and raises `UnlearningDiverged`."""
        cfg = self.cfg
        f_idx, r_idx = self.ex.draw("forget", cfg.forget_batch), self.ex.draw("retain", cfg.retain_batch)
        f_idx, r_idx = self.shard(f_idx), self.shard(r_idx)
        t0 = time.perf_counter()
        terms = self.loss_terms(f_idx, r_idx)
        finite = torch.isfinite(terms["total"].detach()).float().reshape(1)
        if self.accelerator.num_processes > 1:  # every process stops together, or the others would wait forever
            finite = self.accelerator.reduce(finite.to(self.accelerator.device), reduction="sum") \
                / self.accelerator.num_processes
        if float(finite) < 1:
            self.peft_model.load_state_dict(self.good_state, strict=False)
            where = ""
            if out_dir is not None and self.accelerator.is_main_process:
                self.peft_model.save_pretrained(out_dir / "adapter_last_good")
                where = f" and saved to {out_dir / 'adapter_last_good'}"
            values = {k: float(v.detach()) for k, v in terms.items()}
            raise UnlearningDiverged(f"{cfg.method}: loss became {values['total']} at step {step} (terms {values}); "
                                     f"the last good adapter was restored{where}")
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
        for name, group in (("forget_logprob", [self.ex.private[i] for i in self.probe_f]),
                            ("retain_logprob", [self.ex.retain[i] for i in self.probe_r])):
            batch = collate(group, self.pad_id, "right")
            labels = batch.pop("labels").to(self.device)
            logits = self.model(**to_device(batch, self.device)).logits
            out[name] = float(losses.sequence_logprob(logits, labels).mean())
        self.model.train(was)
        return out


def unlearn(lvlm: LVLM, dataset, data, cfg: UnlearnConfig, *, out_dir: Path | str | None = None,
            overwrite: bool = False, copy_model: bool = True, progress: bool = True, step_callback=None,
            accelerator=None, example_cache: dict | None = None) -> UnlearnRun:
    """Unlearn with LoRA. `data` comes from `reference.build_unlearning_data`.

    `copy_model=True` (the default) wraps a copy so that `lvlm` stays the original; pass False for large models
    (the given model is then wrapped in place). `step_callback(step, peft_model)` may return a dict of extra
    columns for that step's dynamics row (used for evaluation during training); it is called before each step and
    once after the last. With `out_dir`, the adapter (safetensors), `dynamics.csv` and `run.json` are written
    there; a finished run is never overwritten unless `overwrite=True`. `accelerator`: an `accelerate.Accelerator`
    (default: a new one, which is the plain loop in a single process; see the module docstring for several).
    `example_cache`: a dict that keeps encoded examples (photo, query, answer) between runs on the same data; the
    caller owns it and its memory.
    """
    if out_dir is not None:
        out_dir = Path(out_dir)
        refuse_finished_run(out_dir, overwrite)
    t0 = time.perf_counter()
    trainer = Trainer(lvlm, dataset, data, cfg, copy_model=copy_model, accelerator=accelerator,
                      example_cache=example_cache)
    main_process = trainer.accelerator.is_main_process
    rows = []
    for step in tqdm(range(cfg.steps + 1), desc=f"unlearn {cfg.method}", disable=not (progress and main_process),
                     leave=False):
        row = {"step": step}
        if step in (0, cfg.steps) or (cfg.probe_every and step % cfg.probe_every == 0):
            row.update(trainer.probe())  # always at the start and the end: the collapse diagnostics need both
        if step_callback is not None:
            row.update(step_callback(step, trainer.peft_model) or {})
        if step < cfg.steps:
            row.update(trainer.step(step, out_dir))
        rows.append(row)
    model = trainer.peft_model
    model.eval()
    dynamics = pd.DataFrame(rows)
    record = run_record(cfg, dataset, data, lvlm, time.perf_counter() - t0)
    record["processes"] = trainer.accelerator.num_processes
    record["diagnostics"] = collapse_diagnostics(dynamics, vocab_size=len(lvlm.tokenizer))
    if out_dir is not None and main_process:
        record["adapter_sha256"] = save_run(model, dynamics, record, out_dir)
    trainer.accelerator.wait_for_everyone()
    return UnlearnRun(LVLM(model, lvlm.processor, f"{lvlm.name}+{cfg.method}"), dynamics, record, out_dir)


def run_record(cfg: UnlearnConfig, dataset, data, lvlm, seconds: float) -> dict:
    import peft
    import transformers

    return {"config": to_dict(cfg), "seed": cfg.seed, "method": cfg.method, "wall_seconds": seconds,
            "data_hash": dataset.fingerprint(), "reference_settings": data.settings, "base_model": lvlm.name,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "peft": peft.__version__, "python": platform.python_version()}}


def refuse_finished_run(out_dir: Path, overwrite: bool) -> None:
    if (Path(out_dir) / "run.json").exists() and not overwrite:
        raise FileExistsError(f"{out_dir} holds a finished run; pass overwrite=True (--overwrite) to replace it")


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
        reasons.append(f"forget log-likelihood {last['forget_logprob']:.1f} nats/token is far below a uniform "
                       f"guess ({uniform:.1f})")
    if first["retain_logprob"] - last["retain_logprob"] > COLLAPSE_RETAIN_DROP:
        reasons.append(f"retain log-likelihood fell from {first['retain_logprob']:.2f} to "
                       f"{last['retain_logprob']:.2f} nats/token")
    if "grad_norm" in dynamics and not dynamics["grad_norm"].dropna().map(math.isfinite).all():
        reasons.append("a gradient norm was not finite")
    return {"collapsed": bool(reasons), "reasons": reasons, "forget_logprob_start": float(first["forget_logprob"]),
            "forget_logprob_end": float(last["forget_logprob"]), "retain_logprob_start": float(first["retain_logprob"]),
            "retain_logprob_end": float(last["retain_logprob"]), "uniform_logprob": uniform}


def save_run(model, dynamics: pd.DataFrame, record: dict, out_dir: Path) -> str:
    """Write the run into a fresh folder beside `out_dir`, then swap it into place (`io.replace_dir`): a reader, or
    a run killed mid-save, never sees an adapter of one run beside the record of another. `run.json` records the
    adapter's SHA-256, which `load_run` checks."""
    out_dir = Path(out_dir)
    tmp = staging_dir(out_dir)
    try:
        model.save_pretrained(tmp / "adapter", safe_serialization=True)
        write_csv(tmp / "dynamics.csv", dynamics)
        digest = _adapter_hash(tmp)
        write_json(tmp / "run.json", {**record, "adapter_sha256": digest})
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return digest


def _adapter_hash(run_dir: Path) -> str:
    return hashlib.sha256((Path(run_dir) / "adapter" / "adapter_model.safetensors").read_bytes()).hexdigest()


class RunError(RuntimeError):
    """A saved run is incomplete or its files do not belong together."""


def load_run(base: LVLM, out_dir: Path | str) -> UnlearnRun:
    """Attach a saved adapter to a copy of the base model (the original is left untouched)."""
    from peft import PeftModel

    out_dir = Path(out_dir)
    if not (out_dir / "run.json").exists():
        raise RunError(f"{out_dir} holds no finished run (no run.json)")
    record = read_json(out_dir / "run.json")
    if record.get("adapter_sha256") != _adapter_hash(out_dir):
        raise RunError(f"{out_dir}: the adapter does not match its run.json (a run overwritten half-way?); "
                       "train it again with overwrite=True")
    model = PeftModel.from_pretrained(copy.deepcopy(base.model), out_dir / "adapter")
    model.eval()
    return UnlearnRun(LVLM(model, base.processor, f"{base.name}+{record['method']}"),
                      pd.read_csv(out_dir / "dynamics.csv"), record, out_dir)


def method_settings(path: Path | str | None = None, overrides: dict | None = None,
                    **common: object) -> dict[str, UnlearnConfig]:
    """Each method's UnlearnConfig from the versioned settings file (`data/settings/methods.json`).

    The file holds `common` settings and per-method `methods` entries (the specificity sweep writes the chosen
    ones). `common` keyword arguments override the file for every method (e.g. `steps=10` in a smoke run);
    `overrides={"PUBG": {"lam": 2.0}}` overrides one method. Unknown methods or settings are refused by name.
    """
    from . import paths

    path = Path(path) if path is not None else paths.SETTINGS / "methods.json"
    spec = json.loads(path.read_text())
    out = {}
    overrides = overrides or {}
    for name in overrides:
        get_method(name)
    for name, values in spec["methods"].items():
        get_method(name)
        merged = {**spec.get("common", {}), **values, **common, **overrides.get(name, {}), "method": name}
        out[name] = from_dict(UnlearnConfig, merged)
    return out


def run_dir(data, cfg: UnlearnConfig) -> Path:
    """Where the run of `cfg` on `data` is cached: keyed by the unlearning data and every setting."""
    from . import paths
    from .config import fingerprint
    from .reference import settings_key

    return paths.CACHE / "runs" / settings_key(data.settings) / f"{cfg.method}-{fingerprint(cfg)}"


def cached_run(lvlm: LVLM, dataset, data, cfg: UnlearnConfig, progress: bool = True,
               example_cache: dict | None = None) -> UnlearnRun:
    """The run of `cfg` on `data`: loaded if an identical run finished before, else trained and saved."""
    out_dir = run_dir(data, cfg)
    if (out_dir / "run.json").exists():
        try:
            return load_run(lvlm, out_dir)
        except RunError:  # a damaged cache entry is trained again, not trusted
            pass
    return unlearn(lvlm, dataset, data, cfg, out_dir=out_dir, overwrite=True, progress=progress,
                   example_cache=example_cache)


# ---------------------------------------------------------------------------------------------------------------
# Command line: the real-model path (`python -m pubg_lib.unlearn --config FILE`, also under `accelerate launch`)
# ---------------------------------------------------------------------------------------------------------------
RUN_CONFIG_KEYS = {"model", "data", "forget", "retain", "out_dir", "dtype", "device_map", "topk", "instruction",
                   "reference_sampling", "trust_remote_code", "unlearn"}
DTYPES = ("float32", "float16", "bfloat16", "float64")


def read_run_config(path: Path | str) -> tuple[dict, UnlearnConfig]:
    """The run config at `path` and its `unlearn` section as an UnlearnConfig. Unknown or missing keys, values of
    the wrong type (a string "false" is not a boolean), unknown dtypes and instructions, a non-positive `topk` and
    an empty forget list are refused by name, before any model is loaded."""
    try:
        spec = json.loads(Path(path).read_text(), parse_constant=lambda c: (_ for _ in ()).throw(
            ConfigError(f"{path}: {c} is not a valid number")))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: a run config is a JSON object, got {type(spec).__name__}")
    unknown = sorted(set(spec) - RUN_CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; known: {sorted(RUN_CONFIG_KEYS)}")
    for key in ("model", "data", "forget", "out_dir"):
        if key not in spec:
            raise ConfigError(f"{path}: missing required key {key!r}")

    def expect(key, ok: bool, what: str):
        if key in spec and not ok:
            raise ConfigError(f"{path}: {key!r} must be {what}, got {type(spec[key]).__name__} {spec[key]!r}")

    for key in ("model", "data", "out_dir"):
        expect(key, isinstance(spec.get(key), str) and bool(spec.get(key)), "a non-empty string")
    for key in ("forget", "retain"):
        expect(key, isinstance(spec.get(key), list) and all(isinstance(p, str) for p in spec.get(key)),
               "a list of person ids (strings)")
    if not spec["forget"]:
        raise ConfigError(f"{path}: 'forget' is empty: name at least one person to forget")
    for key in ("reference_sampling", "trust_remote_code"):
        expect(key, isinstance(spec.get(key), bool), "true or false (a JSON boolean, not a string)")
    expect("dtype", spec.get("dtype") is None or spec.get("dtype") in DTYPES, f"one of {list(DTYPES)} or null")
    expect("topk", spec.get("topk") is None or (isinstance(spec.get("topk"), int)
                                                and not isinstance(spec.get("topk"), bool) and spec["topk"] > 0),
           "a positive integer or null")
    expect("device_map", spec.get("device_map") is None or isinstance(spec.get("device_map"), (str, dict)),
           "a string such as \"auto\", an object, or null")
    expect("instruction", spec.get("instruction") in prompts.INSTRUCTIONS, f"one of {sorted(prompts.INSTRUCTIONS)}")
    expect("unlearn", isinstance(spec.get("unlearn"), dict), "an object of UnlearnConfig settings")
    return spec, from_dict(UnlearnConfig, spec.get("unlearn", {}))


def run_from_config(path: Path | str, overwrite: bool = False, progress: bool = True) -> UnlearnRun:
    """Unlearn a model by id or path on a folder of photos, as a JSON config describes (see `configs/`).

    Keys: `model` (hub id or local path), `data` (a folder in the layout of `data.EntityDataset.from_folder`),
    `forget` (person ids), optional `retain` (default: everybody else), `out_dir`, `dtype` ("bfloat16", ...),
    `device_map`, `topk` (teacher cache size; needed for large vocabularies), `instruction`, `reference_sampling`,
    `trust_remote_code` (false unless you ask for it), and `unlearn` (UnlearnConfig fields).

    Under `accelerate launch --num_processes N` each process holds a whole copy of the model on its own device
    (so `device_map` must be left out), the main process builds the reference data first and the others read it
    from the cache, and each step's batch is split across the processes.
    """
    from accelerate import Accelerator

    from .data import EntityDataset, Split
    from .models import load_lvlm
    from .reference import build_unlearning_data

    spec, cfg = read_run_config(path)
    refuse_finished_run(Path(spec["out_dir"]), overwrite)  # before hours of loading and reference building
    dataset = EntityDataset.from_folder(spec["data"])
    retain = spec.get("retain") or [p for p in dataset.people["person_id"] if p not in set(spec["forget"])]
    split = Split(tuple(spec["forget"]), tuple(retain))
    split.check(dataset)  # unknown people, forget people without a seen photo: refused before the model loads
    accelerator = Accelerator()
    if accelerator.num_processes > 1 and spec.get("device_map"):
        raise ConfigError(f"{path}: 'device_map' shards one model over several devices; under {accelerator.num_processes} "
                          "processes each process holds a whole copy, so leave 'device_map' out")
    dtype = getattr(torch, spec["dtype"]) if spec.get("dtype") else None
    lvlm = load_lvlm(spec["model"], dtype=dtype, device_map=spec.get("device_map"),
                     trust_remote_code=spec.get("trust_remote_code", False))
    if not spec.get("device_map"):
        lvlm.model.to(accelerator.device)
    with accelerator.main_process_first():  # one process writes the reference cache, the others then read it
        data = build_unlearning_data(lvlm, dataset, split,
                                     model_id=str(spec["model"]),
                                     instruction_name=spec.get("instruction", prompts.DEFAULT_INSTRUCTION),
                                     reference_sampling=spec.get("reference_sampling", False),
                                     topk=spec.get("topk"), seed=cfg.seed,
                                     progress=progress and accelerator.is_main_process)
    return unlearn(lvlm, dataset, data, cfg, out_dir=spec["out_dir"], overwrite=overwrite, copy_model=False,
                   progress=progress, accelerator=accelerator)


def build_parser():
    import argparse

    ap = argparse.ArgumentParser(description="Unlearn people from an LVLM with PUBG or a baseline (see configs/).")
    ap.add_argument("--config", required=True, help="a JSON run config")
    ap.add_argument("--overwrite", action="store_true", help="replace a finished run in out_dir")
    return ap


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    from accelerate import PartialState

    run = run_from_config(args.config, overwrite=args.overwrite)
    if not PartialState().is_main_process:
        return
    last = run.dynamics.dropna(subset=["total"]).iloc[-1]
    print(f"{run.record['method']}: {len(run.dynamics) - 1} steps in {run.record['wall_seconds']:.0f} s, "
          f"final loss {last['total']:.4f}; adapter and run record in {run.out_dir}")


if __name__ == "__main__":
    main()
