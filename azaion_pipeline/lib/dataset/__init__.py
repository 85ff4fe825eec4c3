"""The dataset stage: catalogue, validation, quarantine, augmentation, splits, versions."""
