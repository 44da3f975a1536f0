"""Training a classifier on feature vectors: seeded, mini-batch Adam, early stopping on validation accuracy."""

from __future__ import annotations

import copy
import hashlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from edge_ser.errors import ConfigError
from edge_ser.fileio import atomic_writer


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; the defaults train the LAQ MLP on EMODB-sized data in seconds on a CPU."""

    epochs: int = 300
    """0 trains nothing: the model comes back as given (QAT with 0 epochs is no QAT)."""
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 30
    """Stop after this many epochs without a better validation accuracy (ties broken by lower val loss)."""
    seed: int = 0
    threads: int | None = None
    """torch intra-op threads; None leaves torch's default."""
    channels_last: bool = False
    """Train 4-D (image / log-Mel patch) models in channels-last memory order: 2-2.7x faster per step for
    squeezenet_lms on this CPU (oneDNN convolutions); the returned model is back in the default order."""
    cosine: bool = False
    """Cosine learning-rate decay from `lr` to 0 over `epochs` (stepped per batch); default constant."""
    keep_last: bool = False
    """Train exactly `epochs` epochs and keep the last weights, no selection: the refit on all data at an epoch
    count chosen on validation beforehand (the validation curve is still recorded)."""
    class_balanced: bool = False
    """Weight the cross-entropy by n / (k * count of the class) over the training rows, so every class carries
    the same total weight: the loss then matches UAR (mean per-class recall) rather than accuracy."""

    def __post_init__(self) -> None:
        # each of these trained nothing, or one epoch, or crashed (batch 0), without a word; epochs 0 stays: it
        # trains nothing and returns the model as given, which is how qat_epochs 0 means "no QAT"
        def integer(v) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        if not integer(self.epochs) or self.epochs < 0:
            raise ConfigError(f"TrainConfig.epochs={self.epochs!r} must be an integer >= 0")
        if self.epochs > 0 and (not integer(self.patience) or self.patience < 1):
            raise ConfigError(
                f"TrainConfig.patience={self.patience!r} must be an integer >= 1 (0 stopped after the first epoch)"
            )
        if not integer(self.batch_size) or self.batch_size < 1:
            raise ConfigError(f"TrainConfig.batch_size={self.batch_size!r} must be an integer >= 1")
        if not self.lr > 0:
            raise ConfigError(f"TrainConfig.lr={self.lr!r} must be > 0")
        if not self.weight_decay >= 0:
            raise ConfigError(f"TrainConfig.weight_decay={self.weight_decay!r} must be >= 0")
        if self.threads is not None and (not integer(self.threads) or self.threads < 1):
            raise ConfigError(f"TrainConfig.threads={self.threads!r} must be None or an integer >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    """The best model (by validation) and the curve that chose it."""

    model: nn.Module
    best_epoch: int
    best_val_acc: float
    epochs_run: int
    seconds: float
    history: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Distill:
    """Knowledge distillation (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network"): the loss is
    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * cross-entropy, with the
    teacher's logits precomputed for every training row (in the student's class order)."""

    teacher_logits: np.ndarray
    temperature: float = 4.0
    alpha: float = 0.7

    def tensor(self, mixup: float = 0.0) -> torch.Tensor:
        """The teacher's logits as a tensor (distillation with mixup is not supported)."""
        if mixup > 0:
            raise ValueError("train_classifier: distill and mixup together are not supported")
        return torch.as_tensor(np.asarray(self.teacher_logits, np.float32))

    def loss(self, out: torch.Tensor, yb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        kl = nn.functional.kl_div(
            nn.functional.log_softmax(out / t, 1),
            nn.functional.log_softmax(tb / t, 1),
            reduction="batchmean",
            log_target=True,
        )
        return self.alpha * t * t * kl + (1 - self.alpha) * nn.functional.cross_entropy(out, yb)


def seed_everything(seed: int) -> None:
    """Seed torch and numpy so a run with the same data and config gives the same model."""
    torch.manual_seed(seed)
    np.random.seed(seed)


Inputs = np.ndarray | tuple[np.ndarray, ...]
"""One input array [n, ...], or a tuple of them for a multi-input model (e.g. faces and audio)."""


def _tensors(X: Inputs) -> tuple[torch.Tensor, ...]:
    xs = X if isinstance(X, (tuple, list)) else (X,)
    return tuple(torch.as_tensor(np.asarray(x, dtype=np.float32)) for x in xs)


@torch.no_grad()
def predict(model: nn.Module, X: Inputs, batch_size: int = 1024) -> np.ndarray:
    """Logits [n, classes] for inputs X ([n, d], or a tuple of arrays for a multi-input model), eval mode."""
    model.eval()
    xs = _tensors(X)
    n = len(xs[0])
    return torch.cat([model(*(x[i : i + batch_size] for x in xs)) for i in range(0, n, batch_size)]).numpy()


def accuracy(model: nn.Module, X: Inputs, y: np.ndarray) -> float:
    """Fraction of rows whose arg-max logit equals the label."""
    if len(y) == 0:
        return float("nan")
    return float((predict(model, X).argmax(axis=1) == np.asarray(y)).mean())


def _mixup_loss(
    model: nn.Module,
    loss_fn: nn.Module,
    xb: list[torch.Tensor],
    yb: torch.Tensor,
    lam: float,
    gen: torch.Generator,
) -> torch.Tensor:
    """The loss of a batch mixed with a shuffled copy of itself by weight `lam` (mixup)."""
    perm = torch.randperm(len(yb), generator=gen)
    out = model(*(lam * x + (1 - lam) * x[perm] for x in xb))
    return lam * loss_fn(out, yb) + (1 - lam) * loss_fn(out, yb[perm])


def class_weights(y: torch.Tensor, k: int) -> torch.Tensor:
    """Per-class loss weights n / (m * count) for labels `y` over `k` classes (m = the classes present), so
    every present class carries the same total weight; a class absent from `y` gets weight 0."""
    counts = torch.bincount(y, minlength=k)[:k].to(torch.float32)
    present = counts > 0
    w = torch.zeros(k)
    w[present] = len(y) / (int(present.sum()) * counts[present])
    return w


class BalancedCrossEntropy(nn.Module):
    """Cross-entropy weighted by `class_weights` of the training labels, sized to the logits' width."""

    def __init__(self, y: torch.Tensor) -> None:
        super().__init__()
        self.y = y
        self._w: torch.Tensor | None = None

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self._w is None or self._w.numel() != out.shape[1]:
            self._w = class_weights(self.y, out.shape[1])
        return nn.functional.cross_entropy(out, target, weight=self._w)


def _loss_fns(config: TrainConfig, yt: torch.Tensor, distill: Distill | None) -> tuple[nn.Module, nn.Module]:
    """The training loss (class-balanced when `config.class_balanced`) and the plain validation loss."""
    if config.class_balanced and distill is not None:
        raise ValueError("train_classifier: class_balanced with distill is not supported")
    train = BalancedCrossEntropy(yt) if config.class_balanced else nn.CrossEntropyLoss()
    return train, nn.CrossEntropyLoss()


def _check_rows(y_train: np.ndarray, y_val: np.ndarray) -> None:
    """ConfigError naming the training or validation part when it has no rows."""
    for part, ys in (("training", y_train), ("validation", y_val)):
        if not len(ys):
            raise ConfigError(
                f"train_classifier: no {part} rows; a split of a small data set can leave its {part} part "
                "empty: give it more clips per class and speaker"
            )


def _digest(*arrays: torch.Tensor) -> str:
    """A hash of the tensors' bytes (blake2b: ~1 GB/s, so the training images take well under a second)."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        h.update(str(tuple(a.shape)).encode())
        h.update(memoryview(np.ascontiguousarray(a.detach().numpy())).cast("B"))  # no copy when contiguous
    return h.hexdigest()


def _callable_name(f: Any) -> str | None:
    """How a resume file names a callable: a dataclass by its fields (e.g. `FaceAugment(rotation=10.0, ...)`), a
    function by its qualified name (its repr holds an address that changes from run to run)."""
    if f is None:
        return None
    if is_dataclass(f):
        return repr(f)
    return f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', type(f).__qualname__)}"


def _fingerprint(config: TrainConfig, model: nn.Module, train: tuple, val: tuple, recipe: dict) -> dict:
    """What a resume file must match: the config, the loss and augmentation (`recipe`), the model's starting
    weights (a QAT run from another float model is another run), the training rows with their labels and teacher
    logits, and the validation rows (they choose the epoch kept and stop the run)."""
    return {
        "config": config.to_dict(),
        "recipe": recipe,
        "start": _digest(*model.state_dict().values()),
        "data": _digest(*train),
        "val": _digest(*val),
    }


def _save_resume(path: Path, state: dict) -> None:
    """The run's state after an epoch, written whole or not at all (a kill mid-write keeps the last one)."""
    with atomic_writer(path, fsync=False) as fh:
        torch.save(state, fh)


def _load_resume(path: Path, fingerprint: dict) -> dict:
    """The state `_save_resume` wrote, or ConfigError naming the file when it is from another run."""
    try:
        state = torch.load(path, weights_only=False)
    except Exception as e:  # a truncated or foreign file: torch raises several kinds
        raise ConfigError(f"{path}: not a training resume file ({e}); delete it to start again") from e
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        raise ConfigError(
            f"{path}: a resume file from another run (other training settings, starting weights or training "
            "data); delete it to start again, or rerun with what made it"
        )
    return state


@dataclass
class _Step:
    """What one optimisation step uses: the model, optimiser and schedule, the loss and its extras."""

    model: nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler | None
    loss_fn: nn.Module
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None
    mixup: float
    distill: Distill | None
    teacher: torch.Tensor | None
    channels_last: bool


def _epoch(
    step: _Step,
    Xt: tuple[torch.Tensor, ...],
    yt: torch.Tensor,
    config: TrainConfig,
    gen: torch.Generator,
    mix_rng: np.random.Generator,
) -> float:
    """One pass over the training rows in a random order; returns the summed loss."""
    step.model.train()
    order = torch.randperm(len(yt), generator=gen)
    total = 0.0
    for i in range(0, len(order), config.batch_size):
        idx = order[i : i + config.batch_size]
        step.opt.zero_grad(set_to_none=True)
        xb = [x[idx] for x in Xt]
        if step.augment is not None:
            xb[0] = step.augment(xb[0], gen)
        if step.channels_last:
            xb[0] = xb[0].contiguous(memory_format=torch.channels_last)
        if step.mixup > 0:
            lam = float(mix_rng.beta(step.mixup, step.mixup))
            loss = _mixup_loss(step.model, step.loss_fn, xb, yt[idx], lam, gen)
        else:
            out = step.model(*xb)
            if step.distill is None:
                loss = step.loss_fn(out, yt[idx])
            else:
                loss = step.distill.loss(out, yt[idx], step.teacher[idx])
        loss.backward()
        step.opt.step()
        if step.sched is not None:
            step.sched.step()
        total += loss.item() * len(idx)
    return total


def _generators(model, opt, sched, gen: torch.Generator, mix_rng: np.random.Generator) -> dict:
    """The state that makes the next epoch: weights, optimiser, schedule and every random generator."""
    return {
        "model": model.state_dict(),
        "opt": opt.state_dict(),
        "sched": sched.state_dict() if sched is not None else None,
        "gen": gen.get_state(),
        "mix_rng": mix_rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "np_rng": np.random.get_state(),
    }


def _restore(path: Path, fingerprint: dict, model, opt, sched, gen: torch.Generator, mix_rng) -> dict:
    """Load the resume file `path` into the run's objects (`_generators` in reverse); returns the whole state."""
    s = _load_resume(path, fingerprint)
    try:
        model.load_state_dict(s["model"])
    except RuntimeError as e:
        raise ConfigError(f"{path}: its weights are not this model's; delete it to start again") from e
    opt.load_state_dict(s["opt"])
    if sched is not None:
        sched.load_state_dict(s["sched"])
    gen.set_state(s["gen"])
    mix_rng.bit_generator.state = s["mix_rng"]
    torch.set_rng_state(s["torch_rng"])
    np.random.set_state(s["np_rng"])
    return s


def train_classifier(
    model: nn.Module,
    X_train: Inputs,
    y_train: np.ndarray,
    X_val: Inputs,
    y_val: np.ndarray,
    config: TrainConfig = TrainConfig(),
    *,
    progress: bool = True,
    val_accuracy: Callable[[np.ndarray], float] | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    mixup: float = 0.0,
    distill: Distill | None = None,
    resume: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train with cross-entropy; keep the weights of the epoch with the best validation accuracy.

    `val_accuracy(logits)` replaces row accuracy on X_val (e.g. utterance-level voting over segment logits);
    `augment(x, generator)` transforms each training batch of the first input (e.g. SpecAugment masks);
    `mixup` > 0 mixes each (augmented) batch with a shuffled copy of itself, x = l * x + (1 - l) * x[perm] with
    l ~ Beta(mixup, mixup), and the loss alike (Zhang et al., ICLR 2018, "mixup"), seeded by `config.seed`;
    `distill` adds the teacher's soft targets to the loss (`Distill`; not with mixup);
    `resume` names a file where the run's state (weights, optimiser, schedule, random generators, curve) is
    saved after every epoch: a run killed part way continues from its last epoch when called again with the
    same arguments, to the same weights as a run never stopped. The file is removed when the run ends.

    ConfigError when the training or the validation rows are empty: there is nothing to learn from, or nothing
    to choose the epoch by (torch failed on an empty list, with no word of which part was empty).
    """
    _check_rows(y_train, y_val)
    seed_everything(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    Xt = _tensors(X_train)
    cl = config.channels_last and Xt[0].dim() == 4
    if cl:
        model.to(memory_format=torch.channels_last)
    yt = torch.as_tensor(np.asarray(y_train, dtype=np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn, val_loss_fn = _loss_fns(config, yt, distill)
    steps = config.epochs * -(-len(yt) // config.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if config.cosine else None
    teacher = distill.tensor(mixup) if distill is not None else None
    gen = torch.Generator().manual_seed(config.seed)
    mix_rng = np.random.default_rng(config.seed)
    best = (-1.0, float("inf"))
    best_state, best_epoch, stale = copy.deepcopy(model.state_dict()), 0, 0
    history: list[dict] = []
    done, before = 0, 0.0
    resume = Path(resume) if resume is not None else None
    fingerprint = {}
    if resume is not None:
        recipe = {
            "augment": _callable_name(augment),
            "mixup": mixup,
            "distill": None if distill is None else [distill.temperature, distill.alpha],
            "val_accuracy": _callable_name(val_accuracy),
        }
        train = (*Xt, yt) if teacher is None else (*Xt, yt, teacher)
        val = (*_tensors(X_val), torch.as_tensor(np.asarray(y_val)))
        fingerprint = _fingerprint(config, model, train, val, recipe)
    if resume is not None and resume.is_file():
        s = _restore(resume, fingerprint, model, opt, sched, gen, mix_rng)
        best, best_state, best_epoch, stale = s["best"], s["best_state"], s["best_epoch"], s["stale"]
        history, done, before = s["history"], s["epoch"], s["seconds"]
        print(f"train: resuming {resume} after epoch {done} of {config.epochs}", file=sys.stderr, flush=True)
    t0 = time.perf_counter() - before
    # a run killed between its last save and its end had stopped: nothing more to train
    stopped = not config.keep_last and stale >= config.patience
    bar = tqdm(
        range(done + 1, (done if stopped else config.epochs) + 1),
        desc="train",
        unit="epoch",
        initial=done,
        total=config.epochs,
        disable=None if progress else True,
        leave=False,
    )
    epoch = done
    for epoch in bar:
        total = _epoch(
            _Step(model, opt, sched, loss_fn, augment, mixup, distill, teacher, cl),
            Xt,
            yt,
            config,
            gen,
            mix_rng,
        )
        logits = predict(model, X_val)
        val_loss = float(
            val_loss_fn(torch.as_tensor(logits), torch.as_tensor(np.asarray(y_val, dtype=np.int64)))
        )
        if val_accuracy is not None:
            val_acc = float(val_accuracy(logits))
        else:
            val_acc = float((logits.argmax(1) == np.asarray(y_val)).mean())
        history.append(
            {"epoch": epoch, "train_loss": total / len(yt), "val_loss": val_loss, "val_acc": val_acc}
        )
        bar.set_postfix(
            loss=f"{total / len(yt):.3f}", val_acc=f"{val_acc:.3f}", best=f"{max(best[0], 0):.3f}"
        )
        if config.keep_last:
            best, best_epoch = (val_acc, val_loss), epoch
        elif (val_acc, -val_loss) > (best[0], -best[1]):
            best, best_epoch, stale = (val_acc, val_loss), epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        if resume is not None:
            _save_resume(
                resume,
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch,
                    "seconds": time.perf_counter() - t0,
                    **_generators(model, opt, sched, gen, mix_rng),
                    "best": best,
                    "best_state": best_state,
                    "best_epoch": best_epoch,
                    "stale": stale,
                    "history": history,
                },
            )
        if not config.keep_last and stale >= config.patience:
            break
    if resume is not None:
        resume.unlink(missing_ok=True)
    if not config.keep_last:
        model.load_state_dict(best_state)
    if cl:
        model.to(memory_format=torch.contiguous_format)
    model.eval()
    return TrainResult(model, best_epoch, best[0], epoch, time.perf_counter() - t0, history)
