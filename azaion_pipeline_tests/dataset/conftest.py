"""Fixtures for the dataset stage: real sample files in tmp_path, real Dagster runs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from azaion_pipeline.defs.dataset.augmented_dataset import augmented_dataset
from azaion_pipeline.defs.dataset.checks import (
    every_split_non_empty,
    labels_in_range,
    no_near_twins_across_splits,
)
from azaion_pipeline.defs.dataset.raw_annotations import raw_annotations
from azaion_pipeline.defs.dataset.training_dataset import training_dataset
from azaion_pipeline.defs.io import RecordIOManager
from azaion_pipeline.defs.resources import AzaionStorage
from azaion_pipeline.lib.classes import ClassCatalog
from azaion_pipeline.lib.dataset.annotations import ValidationRules
from azaion_pipeline.lib.dataset.augment import AugmentSettings, augment_pending, store_dir
from azaion_pipeline.lib.dataset.catalogue import Catalogue
from azaion_pipeline.lib.dataset.ingest import DEFAULT_RESCAN, IngestReport, ingest
from azaion_pipeline.lib.dataset.versions import build_version
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.sample_data import generate_sample_data
from azaion_pipeline.lib.settings import PROJECT_ROOT

SMALL = ((64, 48), (128, 96))
DATASET_ASSETS = [raw_annotations, augmented_dataset, training_dataset]
DATASET_CHECKS = [no_near_twins_across_splits, every_split_non_empty, labels_in_range]


@pytest.fixture(scope="session")
def catalog() -> ClassCatalog:
    return ClassCatalog.load(PROJECT_ROOT / "configs" / "classes.json")


@pytest.fixture
def layout(tmp_path: Path) -> AzaionLayout:
    return AzaionLayout.under(tmp_path / "azaion")


def run_config(variants: int = 2, workers: int = 1, **training) -> dict:
    return {
        "ops": {
            "raw_annotations": {"config": {"workers": workers}},
            "augmented_dataset": {"config": {"variants": variants, "workers": workers}},
            "training_dataset": {"config": training},
        }
    }


class Harness:
    """Sample data and real Dagster runs against one Azaion root (test modules cannot
    import conftest under importlib mode, so helpers travel as this fixture)."""

    assets = DATASET_ASSETS
    checks = DATASET_CHECKS

    def __init__(self, layout: AzaionLayout, catalog: ClassCatalog, instance):
        self.layout = layout
        self.catalog = catalog
        self.instance = instance

    def add_samples(self, images: int, seed: int = 0, with_defects: bool = False):
        return generate_sample_data(
            self.layout,
            self.catalog,
            images,
            seed=seed,
            with_defects=with_defects,
            size_range=SMALL,
        )

    run_config = staticmethod(run_config)

    def ingest(
        self, include_seed: bool = False, rescan: timedelta = DEFAULT_RESCAN, **rules
    ) -> tuple[Catalogue, IngestReport]:
        """Run the lib ingest once on this root; the caller closes the catalogue."""
        catalogue = Catalogue.of(self.layout)
        validation = ValidationRules(self.catalog.valid_ids(), **rules)
        report = ingest(self.layout, catalogue, validation, include_seed, workers=1, rescan=rescan)
        return catalogue, report

    def build(self, settings: AugmentSettings, **ingest) -> tuple[IngestReport, Any, Any]:
        """ingest + augment + version through the lib, as the three assets do: the ingest
        report, what was augmented, and the new version."""
        catalogue, report = self.ingest(**ingest)
        with catalogue:
            augmented = augment_pending(catalogue, self.layout.processed, settings, 1)
            built = build_version(
                catalogue,
                self.layout,
                store_dir(self.layout.processed, settings),
                settings.key,
                self.catalog.model_names(),
            )
        return report, augmented, built

    def materialize(self, assets=DATASET_ASSETS, config=None, checks=()):
        """Run ``assets`` (and ``checks``) for real; config of other assets is dropped."""
        names = {a.key.to_user_string() for a in assets}
        ops = (config or run_config())["ops"]
        result = dg.materialize(
            [*assets, *checks],
            instance=self.instance,
            resources={
                "storage": AzaionStorage(root_dir=str(self.layout.root)),
                "io_manager": RecordIOManager(root_dir=str(self.layout.root)),
            },
            run_config={"ops": {name: stanza for name, stanza in ops.items() if name in names}},
        )
        assert result.success
        return result

    @staticmethod
    def metadata(result, asset: str) -> dict:
        [event] = result.asset_materializations_for_node(asset)
        return {key: entry.value for key, entry in event.metadata.items()}


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def harness(layout, catalog, instance) -> Harness:
    return Harness(layout, catalog, instance)


@pytest.fixture(scope="session")
def make_harness(catalog):
    """A harness on its own root and in-memory instance, for module-scoped builds."""

    def make(root: Path) -> Harness:
        return Harness(AzaionLayout.under(root), catalog, dg.DagsterInstance.ephemeral())

    return make
