"""The Azaion root's on-disk layout (AZAION_FORMAT.md), in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

IMAGES = "images"
LABELS = "labels"
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class AzaionLayout:
    root: Path
    data: Path
    data_seed: Path
    data_deleted: Path

    @classmethod
    def under(
        cls,
        root: Path | str,
        data: Path | str | None = None,
        data_seed: Path | str | None = None,
        data_deleted: Path | str | None = None,
    ) -> AzaionLayout:
        root = Path(root).absolute()
        return cls(
            root=root,
            data=Path(data).absolute() if data else root / "data",
            data_seed=Path(data_seed).absolute() if data_seed else root / "data-seed",
            data_deleted=Path(data_deleted).absolute() if data_deleted else root / "data_deleted",
        )

    @property
    def corrupted(self) -> Path:
        """Quarantine: moved pairs plus reasons.jsonl. Nothing is ever deleted."""
        return self.root / "data-corrupted"

    @property
    def intake(self) -> Path:
        """The stream consumer's own state: sealed batch manifests and dead letters."""
        return self.root / "intake"

    @property
    def processed(self) -> Path:
        """Augmented annotations (originals and variants)."""
        return self.root / "data-processed"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def manifests(self) -> Path:
        """Small JSON manifests that assets write and downstream assets read."""
        return self.root / "manifests"

    def dataset_dir(self, version: str) -> Path:
        return self.datasets / f"azaion-{version}"

    @staticmethod
    def images_and_labels(folder: Path) -> tuple[Path, Path]:
        return folder / IMAGES, folder / LABELS
