"""Classification data sets shipped with scikit-learn: iris, digits, breast cancer.

The data are bundled with the scikit-learn package, so nothing is downloaded. Each set is
split once, deterministically: a stratified 75 % / 25 % train/validation split
(``train_test_split(test_size=0.25, stratify=labels, random_state=0)``). Inputs are then
scaled with statistics of the training split only:

- iris, breast-cancer: standardised per feature (mean 0, standard deviation 1 on the
  training split; ``StandardScaler``, population standard deviation);
- digits: pixel intensities 0..16 divided by 16 into [0, 1] (many pixels are constant on
  the training split, so standardising would divide by zero).

Targets are one-hot for the multiclass sets (columns in class-label order) and a single 0/1
column for breast-cancer, with scikit-learn's encoding: 1 = benign, 0 = malignant.
"""

from functools import cache
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from ._dataset import Dataset, Kind

VALIDATION_FRACTION = 0.25
SPLIT_SEED = 0
DIGITS_MAX_INTENSITY = 16.0


def iris() -> Dataset:
    """Fisher's iris: 150 flowers, 4 measurements, 3 species."""
    return _load("iris").to()


def digits() -> Dataset:
    """UCI optical digits: 1,797 8x8 images, 10 classes."""
    return _load("digits").to()


def breast_cancer() -> Dataset:
    """Wisconsin diagnostic breast cancer: 569 tumours, 30 features, benign (1) or not (0)."""
    return _load("breast-cancer").to()


_SOURCES: dict[str, tuple[str, Kind, str]] = {
    # name: (sklearn.datasets loader, kind, description)
    "iris": ("load_iris", "multiclass", "Fisher's iris, 3 species from 4 measurements "
             "(sklearn load_iris)"),
    "digits": ("load_digits", "multiclass", "Handwritten digits 0-9 from 8x8 images, pixels / 16 "
               "(UCI optical digits, sklearn load_digits)"),
    "breast-cancer": ("load_breast_cancer", "binary", "Breast tumours benign (1) or malignant "
                      "(0) from 30 features (UCI WDBC, sklearn load_breast_cancer)"),
}


@cache
def _load(name: str) -> Dataset:
    """Load, split and scale once per process; callers get copies (see ``Dataset.to``)."""
    # Imported here: scikit-learn takes most of a second to import and few runs need it.
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    loader, kind, description = _SOURCES[name]
    features, labels = getattr(datasets, loader)(return_X_y=True)
    train_x, valid_x, train_y, valid_y = train_test_split(
        features, labels, test_size=VALIDATION_FRACTION, stratify=labels,
        random_state=SPLIT_SEED,
    )
    if name == "digits":
        train_x, valid_x = train_x / DIGITS_MAX_INTENSITY, valid_x / DIGITS_MAX_INTENSITY
    else:
        scaler = StandardScaler().fit(train_x)
        train_x, valid_x = scaler.transform(train_x), scaler.transform(valid_x)
    classes = int(labels.max()) + 1
    fraction = f"{1 - VALIDATION_FRACTION:.0%}/{VALIDATION_FRACTION:.0%}"
    return Dataset(
        name=name,
        inputs=_tensor(train_x),
        targets=_targets(train_y, kind, classes),
        kind=kind,
        validation_inputs=_tensor(valid_x),
        validation_targets=_targets(valid_y, kind, classes),
        description=f"{description}; stratified {fraction} split, seed {SPLIT_SEED}",
    )


def _tensor(array: NDArray[Any]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64))


def _targets(labels: NDArray[Any], kind: Kind, classes: int) -> torch.Tensor:
    if kind == "multiclass":
        one_hot = torch.nn.functional.one_hot(torch.from_numpy(labels).long(), classes)
        return one_hot.to(torch.float64)
    return _tensor(labels).unsqueeze(1)
