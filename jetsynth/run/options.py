"""The `jetsynth evolve` options, defined once: one `Option` per `EvolveConfig` field, in the order
`evolve --help` lists them. The field gives the option its name and default; the `Option` gives
its help text and what values it takes, as plain data (no click here: the command line builds its
click options from this list, `cli/evolve_options.py`). Options of the command alone (--run-dir,
--resume, --trust-code) live in the command line."""

from __future__ import annotations

from dataclasses import dataclass

from jetsynth.core.genome import PRECISIONS
from jetsynth.core.mating import ALIGNMENTS, MATING_FUNCTIONS, STRUCTURES
from jetsynth.core.pressure_costs import PRESSURE_ON
from jetsynth.core.selection import POLICIES
from jetsynth.nn.device import AMP_CHOICES
from jetsynth.nn.structure import CLUSTER_MODES
from jetsynth.run.bounds import (
    ALPHA,
    BATCH,
    COUNT,
    CPUS,
    EPOCHS,
    FRACTION,
    IMAGE_SIZE,
    LEARNING_RATE,
    POSITIVE,
    SECONDS,
    SEED,
    THREADS,
    TRAIN_BATCH,
    Bounds,
)
from jetsynth.run.config import PRESETS, PRESSURES


@dataclass(frozen=True)
class Option:
    """How one `EvolveConfig` field is given on the command line. Without `number`, `choices`,
    `integer`, `flag` or `file` the option takes any text (checked later by `EvolveConfig.check`).

    number: the accepted range; a tuple of ranges for an option that takes that many numbers.
    integer: any integer (the range is checked by `EvolveConfig.check`).
    repeat: the option may be given several times, each adding one value.
    per_channel: numbers, one per image channel, repeated or as a comma list ('0.5,0.4').
    file: a file path (`resolve`: made absolute when parsed).
    name: the option's name when it is not the field's ('--alpha' fills `alphas`)."""

    field: str
    help: str | None = None
    number: Bounds | tuple[Bounds, ...] | None = None
    integer: bool = False
    choices: tuple[str, ...] | None = None
    flag: bool = False
    repeat: bool = False
    per_channel: bool = False
    file: bool = False
    resolve: bool = False
    name: str | None = None

    @property
    def option(self) -> str:
        """The option as typed: '--batch-size' for the field batch_size."""
        return "--" + (self.name or self.field.replace("_", "-"))


EVOLVE_OPTIONS: tuple[Option, ...] = (
    Option("data", "digits | mnist:DIR | fashion-mnist:DIR | cifar10:DIR | stl10:DIR | folder:DIR "
                   "(your images, one sub-folder per class)"),
    Option("subset", "Stratified, seeded fraction of the training split to use.",
           number=Bounds(float, 0, 1, low_open=True)),
    Option("val_split", "Stratified, seeded fraction of the training split held out for validation, "
                        "which selection uses (folder:DIR with DIR/val: that folder); 0: none.",
           number=Bounds(float, 0, 1, high_open=True)),
    Option("input_size", "Resize every image to S×S [default: the dataset's size; folder:DIR: the "
                         "images' own when all are square and of one size, else 32].",
           number=IMAGE_SIZE),
    Option("mean", "Normalisation mean per channel, pixels in [0, 1] (what pretrained weights "
                   "expect): once per channel or a comma list [default: the training split's].",
           per_channel=True),
    Option("std", "Normalisation standard deviation per channel, as --mean [default: the "
                  "training split's].", per_channel=True),
    Option("augment", "Augment training batches: random crop with padding, left-right flip.",
           flag=True),
    Option("arch", "lenet5 | alexnet-cifar | resnet18 | mobilenet-v2 | module:function | "
                   "file.py:function (your factory (input_shape, classes) -> nn.Module; user code, "
                   "see Security)."),
    # presets and channel groups
    Option("preset", "A seed paper's settings, exactly as every run had them before the "
                     "user-first defaults (kernel clusters, fixed --keep 0.8 on synapses, exact "
                     "widths, 6 generations; seed000: the paper's filter clusters and 10 generations) "
                     "[default: none: shrink until the floor, see "
                     "--max-drop].", choices=PRESETS),
    Option("channel_multiple", "Every channel space of an offspring keeps a multiple of this many "
                               "live channels (the widths GPU and CPU kernels run fastest); 1: "
                               "exact widths [default: 8, or the multiple the device profile of "
                               "--bench DEVICE declares (8 on every built-in profile); 1 with --preset].",
           number=COUNT),
    Option("generations", "Generations including the ancestor (generation 1) [default: at most "
                          "30 (8 on digits), ending by --patience; 6 with --preset, 10 with seed000].",
                          number=COUNT),
    Option("population", "Offspring per generation.", number=COUNT),
    Option("screen", "Offspring drawn per member: the draw whose inherited weights lose least on "
                     "2,048 training images is trained, so an unlucky draw that killed strong "
                     "filters is not [default: 8 with --target-fps, else 1 (seed 001's single draw)].",
           number=COUNT),
    Option("parents", "Parents per offspring.", number=COUNT),
    Option("cluster", "What a synaptic cluster is in conv layers [default: filter with --target-fps, "
                      "else kernel; filter with --preset seed000].", choices=CLUSTER_MODES),
    Option("keep", "Offspring's share of its parent's synapses (environmental pressure); with "
                   "--pressure adaptive, the strongest share [default: 0.5 with --max-drop or "
                   "--accuracy-floor, else 0.8].", number=Bounds(float, 0, 1, low_open=True)),
    Option("balance", "0: every layer loses the same share; 1: big layers carry the pressure "
                      "[default: 0 with --target-fps, else 0.5].", number=FRACTION),
    Option("pressure_on", "What the pressure's budget counts: synapses (seed 001), macs (each "
                          "synapse weighs its multiply-accumulates, so expensive convolutions carry "
                          "the pressure at --balance > 0) or latency (its terms in the calibrated "
                          "latency model of the --bench target) [default: synapses].",
           choices=PRESSURE_ON),
    Option("truncation", "Weights below this fraction of the layer's largest count 0 in cluster "
                         "strength.", number=Bounds(float, 0, 1, high_open=True)),
    Option("cluster_pressure", "Share of the pressure that removes whole clusters (1) rather than "
                               "thinning them (0) [default: 0.9 with --target-fps, else 0.5].",
           number=FRACTION),
    Option("epochs", "Training epochs per offspring [default: 5 on digits, else 2].", number=EPOCHS),
    Option("ancestor_epochs", "Training epochs of the ancestor [default: 20 on digits, else 5].",
           number=EPOCHS),
    Option("batch_size", number=TRAIN_BATCH),
    Option("lr", "Adam learning rate.", number=LEARNING_RATE),
    Option("precision", "fp16: restrict trained weights to half precision.", choices=PRECISIONS),
    Option("alignment", "How parents' clusters are matched in mating.", choices=ALIGNMENTS),
    Option("mating", "Mating function: weighted sum (seed 000) or product over K_c (seed 002).",
           choices=MATING_FUNCTIONS),
    Option("structure", "Offspring clusters: in all parents, or in any (tagged union).",
           choices=STRUCTURES),
    Option("alphas", "Mating weight of each parent, once per parent [default: equal].",
           number=ALPHA, repeat=True, name="alpha"),
    Option("selection", "Parent-selection policy [default: fps with --target-fps, else random].",
           choices=POLICIES),
    Option("overlap_band", "similarity selection: preferred cluster overlap of mates with the "
                           "first parent.", number=(FRACTION, FRACTION)),
    Option("reinit", "Offspring start from fresh weights ('newborns').", flag=True),
    Option("seed", number=SEED),
    Option("executor", "Where members train: local (this process, one at a time) or ray (in "
                       "parallel as Ray tasks; pip install 'jetsynth[ray]')."),
    Option("ray_address", "--executor ray: the cluster, auto or HOST:PORT or ray://HOST:PORT "
                          "[default: start a local Ray on this machine]."),
    Option("cpus_per_member", "--executor ray: CPUs (torch threads) each training member gets.",
           number=CPUS),
    Option("gpus_per_member", "--executor ray: GPUs reserved for each training member (0.5: two "
                              "per GPU).", number=Bounds(float, 0, 1024)),
    Option("threads", "torch threads for training (0: torch's default, one per core); on a shared "
                      "machine one thread trains fastest (tools/bench_train_threads.py).",
           number=THREADS),
    Option("device", "Where members train and are evaluated: auto (CUDA when there is a GPU, else "
                     "the CPU) | cpu | cuda (every GPU: the local executor trains one member per GPU "
                     "at a time) | cuda:N."),
    Option("amp", "Mixed precision while training: bf16 | fp16 (with a gradient scaler) | off "
                  "[default: bf16 on a GPU (fp16 where it lacks bf16), off on the CPU].",
           choices=AMP_CHOICES),
    Option("bench", "Time members: none | ort (onnxruntime CPU) | ort-cuda | ort-trt | a device "
                    "(a stored name or user@host[:port]; see `jetsynth devices`); repeat it for a "
                    "pool of boards of one kind that time a generation in parallel, one member per "
                    "device at a time.", repeat=True),
    Option("bench_batch", "--bench: images per query.", number=BATCH),
    Option("bench_seconds", "--bench: minimum timed seconds per member.", number=SECONDS),
    Option("target_fps", "Stop after the generation in which a member reaches this FPS (needs "
                         "--bench).", number=POSITIVE),
    Option("max_drop", "Shrink until the floor: members must keep validation accuracy within this "
                       "fraction of the ancestor's (0.01 = one point); turns on adaptive pressure "
                       "[default floor: one point].", number=Bounds(float, 0, 1, high_open=True)),
    Option("accuracy_floor", "The floor as an absolute validation accuracy (0.985), instead of "
                             "--max-drop.", number=FRACTION),
    Option("grow_on_drop", "Repair an offspring whose validation accuracy fell more than this "
                           "fraction below its best parent's: widen (R2WiderR) the layer it lost "
                           "most in, retrain, keep it if it recovers; else deepen it (R2DeeperR) "
                           "and do the same.", number=FRACTION),
    Option("patience", "Stop once this many generations in a row found no smaller (or faster) "
                       "member at the accuracy floor.", number=COUNT),
    Option("pressure", "adaptive: each generation's keep share follows the best validation accuracy "
                       "(strong with room above the floor, easing near it, none after a fall below "
                       "it) and, with --target-fps, the speed still missing [default: adaptive with "
                       "--target-fps, --max-drop or --accuracy-floor, else fixed].",
           choices=PRESSURES),
    Option("measure_every", "--bench: time every K-th member and predict the rest with the latency "
                            "model.", number=COUNT),
    Option("ancestor_weights", "Start the ancestor from these weights (safetensors, or a torch state "
                               "dict read with weights_only) instead of a fresh initialisation; with "
                               "--ancestor-epochs 0 it is only evaluated.", file=True, resolve=True),
    Option("head_epochs", "--ancestor-weights for other classes: epochs that train the new head "
                          "alone before the --ancestor-epochs of the whole network.", number=EPOCHS),
    Option("latency_model", "--bench: a model from `jetsynth calibrate`, or none for one fitted on "
                            "the run's own measurements [default: calibration/DEVICE.json if "
                            "present, else none].", file=True),
)

NOT_OPTIONS: frozenset[str] = frozenset({"bench_pool"})
"""`EvolveConfig` fields that no evolve option sets (every field added without an option goes here,
so that leaving one out is a decision; `tests/run/test_options.py` checks)."""

SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Data", ("data", "subset", "val_split", "input_size", "mean", "std", "augment")),
    ("Model", ("arch", "ancestor_weights", "head_epochs", "ancestor_epochs")),
    ("Evolution", ("preset", "channel_multiple", "generations", "population", "screen", "parents",
                   "cluster", "keep", "balance", "pressure_on", "truncation", "cluster_pressure",
                   "pressure", "max_drop", "accuracy_floor", "patience", "grow_on_drop",
                   "alignment", "mating", "structure", "alphas", "selection", "overlap_band",
                   "reinit", "seed")),
    ("Training", ("epochs", "batch_size", "lr", "precision", "device", "amp", "threads")),
    ("Timing", ("bench", "bench_batch", "bench_seconds", "target_fps", "measure_every",
                "latency_model")),
    ("Scale-out", ("executor", "ray_address", "cpus_per_member", "gpus_per_member")),
)
"""The evolve options in the sections `evolve --help` shows them in, and the tables a `--config`
TOML file may group them under (each field in exactly one section; `tests/run/test_options.py`
checks)."""
