"""Seed 003's hierarchical ensemble of the final K members: a two-level (stacked) network whose
first level is the members themselves (frozen) and whose second level is a linear combiner of
their log-probabilities, trained on the training split: the images the members learned from, so
the combiner sees no example its members could not have seen (trained on the validation split
it would learn from more labels than the members, and the selection split would no longer be
held out from the model it selects). The validation split gives its `val_accuracy`; the test
split stays unseen until the report. The combiner starts as the plain average of the members'
log-probabilities. Exported as one ONNX graph.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from jetsynth.nn.compact import compact
from jetsynth.storage import atomic_write, write_json

ENSEMBLE_DIR = "ensemble"
ONNX_FILE = "ensemble.onnx"


class StackedEnsemble(nn.Module):
    """members → log-softmax each → concatenate → linear combiner → class scores."""

    def __init__(self, members: list[nn.Module], num_classes: int) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        k = len(members)
        self.combine = nn.Linear(k * num_classes, num_classes)
        with torch.no_grad():
            self.combine.weight.copy_(torch.cat([torch.eye(num_classes) / k] * k, dim=1))
            self.combine.bias.zero_()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.log_softmax(m(x), dim=1) for m in self.members], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(self.features(x))


@torch.no_grad()
def _features(model: StackedEnsemble, images: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model.features(images[s:s + 1000]) for s in range(0, len(images), 1000)])


def _accuracy(scores: torch.Tensor, labels: torch.Tensor) -> float:
    return float((scores.argmax(1) == labels).float().mean())


def train_combiner(model: StackedEnsemble, features: torch.Tensor, labels: torch.Tensor,
                   epochs: int, lr: float = 1e-2, weight_decay: float = 1e-3) -> None:
    """Full-batch Adam on the combiner alone (`epochs` steps)."""
    optimizer = torch.optim.Adam(model.combine.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model.combine(features), labels).backward()
        optimizer.step()


def build_ensemble(run, ids: list[str], dataset, config) -> dict:
    """Stack the members `ids` of `run`, train the combiner, save it (RUN/ensemble/) and its
    ONNX graph (RUN/ensemble.onnx); returns its figures."""
    from jetsynth.ship.export import onnx_session, to_onnx

    genomes = [run.genome(i) for i in ids]
    members = [compact(g.build(), g.topology, g.masks).model.eval() for g in genomes]
    model = StackedEnsemble(members, dataset.classes).eval()
    for p in model.members.parameters():
        p.requires_grad_(False)
    train_features = _features(model, dataset.train_x)
    val_features = _features(model, dataset.val_x)
    test_features = _features(model, dataset.test_x)
    with torch.no_grad():
        average = _accuracy(model.combine(test_features), dataset.test_y)
    train_combiner(model, train_features, dataset.train_y, config.ensemble_epochs)
    with torch.no_grad():
        accuracy = _accuracy(model.combine(test_features), dataset.test_y)
        val_accuracy = _accuracy(model.combine(val_features), dataset.val_y)
    folder = Path(run.root) / ENSEMBLE_DIR
    tensors = {f"combine.{k}": v.contiguous() for k, v in model.combine.state_dict().items()}
    atomic_write(folder / "combiner.safetensors", lambda tmp: save_file(tensors, str(tmp)), run.root)
    proto = to_onnx(model, dataset.input_shape, precision="fp32")
    path = Path(run.root) / ONNX_FILE
    atomic_write(path, lambda tmp: tmp.write_bytes(proto.SerializeToString()), run.root)
    session = onnx_session(path)
    sample = dataset.test_x[:256].numpy()
    onnx_out = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: sample})[0])
    with torch.no_grad():
        diff = float((onnx_out - model(dataset.test_x[:256])).abs().max())
    figures = {"members": ids, "accuracy": accuracy, "val_accuracy": val_accuracy,
               "combiner_images": len(train_features),
               "average_accuracy": average, "onnx": str(path), "onnx_max_abs_diff": diff}
    write_json(folder / "ensemble.json", figures, run.root)
    return figures
