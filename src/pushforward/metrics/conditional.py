"""Does a conditional model draw the class it is asked for? Samples of each class, scored
against held-out examples of that class:

- images: the data's feature classifier (metrics/features.py) reads each class's samples:
  ``cond_accuracy`` is the mean over classes of the fraction read as the asked class, beside the
  classifier's own accuracy on real test images of each class (its floor, what a perfect model
  scores); ``intra_fd`` is the mean over classes of the Fréchet distance between a class's
  samples and its test images (Miyato & Koyama 2018), beside the same distance from training to
  test images of the class;
- the 2-D mode sets, whose label is the mode: ``label_modes`` counts the labels whose samples
  land at their own mode (within 3 standard deviations, as the mode metrics count), and
  ``label_hq_fraction`` is the fraction of samples that do.

May import, of this package: data, metrics/features, metrics/scores, models/base.
"""

from __future__ import annotations

from typing import Any

import torch

from ..data import TOY_MODES, TOY_STD, Dataset
from ..models.base import Model
from .features import classifier_for, embed
from .scores import MIN_SAMPLES, frechet_distance

PER_CLASS = 1000  # samples (and held-out examples, where a class has them) per class


def class_samples(
    model: Model, classes: int | list[int], n: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """n samples of each class (0 to classes - 1, or those listed), seeded: ([k * n, *shape]
    on the CPU, their labels)."""
    g = torch.Generator().manual_seed(seed)
    wanted = torch.as_tensor(classes) if isinstance(classes, list) else torch.arange(classes)
    labels = wanted.repeat_interleave(n)
    fake = torch.cat([model.sample(len(c), g, c).float().cpu() for c in labels.split(10_000)])
    return fake, labels


def image_conditional(model: Model, ds: Dataset, n_fake: int, seed: int) -> dict[str, Any]:
    """Per-class classifier accuracy and intra-class FD of a conditional model on labelled
    images, with their floors, over the classes it was trained on; classes without enough test
    images for an FD are left out of it."""
    assert ds.test is not None and ds.test_labels is not None and ds.train_labels is not None
    net, _ = classifier_for(ds)
    classes = model.trained_classes()
    k = len(classes)
    per = max(MIN_SAMPLES, min(PER_CLASS, n_fake // k))
    fake, labels = class_samples(model, classes, per, seed)
    f_fake, logits = embed(net, fake)
    g = torch.Generator().manual_seed(seed)
    acc, acc_floor, fd, fd_floor = [], [], [], []
    for c in classes:
        mine = labels == c
        acc.append(float((logits[mine].argmax(1) == c).double().mean()))
        test = ds.test[ds.test_labels == c]
        train = ds.train[ds.train_labels == c]
        if len(test) == 0:
            continue
        f_test, l_test = embed(net, test[:per])
        acc_floor.append(float((l_test.argmax(1) == c).double().mean()))
        m = min(per, len(test), len(train))
        if m < MIN_SAMPLES:
            continue
        f_train, _ = embed(net, train[torch.randperm(len(train), generator=g)[:m]])
        fd.append(frechet_distance(f_fake[mine][:m], f_test[:m]))
        fd_floor.append(frechet_distance(f_train, f_test[:m]))
    out: dict[str, Any] = {
        "cond_accuracy": sum(acc) / k,
        "cond_accuracy_floor": sum(acc_floor) / max(1, len(acc_floor)),
        "cond_accuracy_per_class": [round(a, 4) for a in acc],
        "cond_per_class": per,
    }
    if fd:
        out.update(
            intra_fd=sum(fd) / len(fd),
            intra_fd_floor=sum(fd_floor) / len(fd_floor),
            intra_fd_per_class=[round(v, 4) for v in fd],
        )
    return out


@torch.no_grad()
def mode_conditional(model: Model, data_name: str, n_fake: int, seed: int) -> dict[str, Any]:
    """For a mode set: how many labels' samples land at their own mode (within 3 sd), and the
    fraction of samples that do."""
    modes = torch.as_tensor(TOY_MODES[data_name]).double()
    k = min(model.classes, len(modes))
    per = max(MIN_SAMPLES, min(PER_CLASS, n_fake // k))
    fake, labels = class_samples(model, k, per, seed)
    dist = (fake.double() - modes[labels]).norm(dim=1)  # [k * per] to the asked mode
    home = dist <= 3 * TOY_STD[data_name]
    per_label = home.view(k, per).double().mean(1)
    return {
        "label_modes": int((per_label > 0).sum()),
        "label_hq_fraction": float(home.double().mean()),
        "label_hq_per_class": [round(float(v), 4) for v in per_label],
    }


def conditional_applies(model: Model, ds: Dataset | None, data_name: str) -> str | None:
    """None when the conditional metrics apply, else why not."""
    if not model.classes:
        return "the model is not conditional"
    if data_name in TOY_MODES:
        return None
    ok = (
        ds is not None
        and ds.kind == "images"
        and ds.train_labels is not None
        and ds.test is not None
        and ds.test_labels is not None
    )
    return (
        None if ok else "conditional metrics need labelled train and test images, or ring8/grid25"
    )
