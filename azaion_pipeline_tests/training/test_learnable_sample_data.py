"""The LEARNABLE sample-data style the training tests rely on for a model that detects."""

import numpy as np
import pytest

from azaion_pipeline.lib.classes import ClassCatalog
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.sample_data import LEARNABLE, SampleStyle, generate_sample_data
from azaion_pipeline.lib.settings import load_settings


@pytest.fixture(scope="module")
def catalog() -> ClassCatalog:
    return ClassCatalog.load(load_settings().resolved_classes_file())


def labels(root) -> list[np.ndarray]:
    layout = AzaionLayout.under(root)
    files = sorted((layout.data / "labels").glob("*.txt"))
    files += sorted((layout.data_seed / "labels").glob("*.txt"))
    return [np.loadtxt(f, ndmin=2) for f in files]


def test_learnable_style_draws_few_large_norm_shapes(tmp_path, catalog):
    report = generate_sample_data(
        AzaionLayout.under(tmp_path), catalog, 40, size=(128, 128), style=LEARNABLE
    )
    rows = labels(tmp_path)
    assert len(rows) == len(report.valid) + len(report.seed) == 40
    assert all(1 <= len(r) <= LEARNABLE.max_objects for r in rows)  # no empty labels
    boxes = np.concatenate(rows)
    assert set(boxes[:, 0].astype(int)) == {c.id for c in catalog.base[:2]}  # Norm ids only
    assert boxes[:, 3:].min() >= 32 / 128  # sides at least a quarter of the image


def test_default_style_keeps_every_class_and_weather_mode(tmp_path, catalog):
    generate_sample_data(AzaionLayout.under(tmp_path), catalog, 60, size=(128, 128))
    boxes = np.concatenate([r for r in labels(tmp_path) if r.size])
    ids = set(boxes[:, 0].astype(int))
    assert len({i % 20 for i in ids}) > 5 and any(i >= 20 for i in ids)
    assert boxes[:, 3:].min() < 32 / 128


@pytest.mark.parametrize(
    "arguments",
    [{"size_divisors": (2, 4)}, {"classes": 0}, {"max_objects": 0}, {"empty_share": 1.5}],
)
def test_style_rejects_impossible_settings(arguments):
    with pytest.raises(ValueError):
        SampleStyle(**arguments)
