"""onnx_model, coreml_model, tensorrt_model and their checks, on the session's trained model."""

import zipfile
from pathlib import Path

import dagster as dg
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from azaion_pipeline.defs.export.assets import (
    coreml_model,
    coreml_spec_matches,
    onnx_matches_pytorch,
    onnx_model,
    tensorrt_model,
)
from azaion_pipeline.lib.export import ExportedModel, engine_filename, zip_package
from azaion_pipeline.lib.train import TrainedWeights
from azaion_pipeline_tests.seeding import seeded_instance, upstream

from .conftest import latest_metadata, training_resources


def check_metadata(result) -> tuple[bool, dict]:
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation.passed, {k: v.value for k, v in evaluation.metadata.items()}


def export_onnx(root: Path, trained: TrainedWeights, **config) -> tuple[ExportedModel, bool, dict]:
    """onnx_model's record plus the parity check's verdict, from one real export."""
    result = dg.materialize(
        [*upstream("trained_model"), onnx_model, onnx_matches_pytorch],
        instance=seeded_instance(root, trained_model=trained),
        resources=training_resources(root),
        run_config={"ops": {"onnx_model": {"config": config}}},
    )
    return result.output_for_node("onnx_model"), *check_metadata(result)


@pytest.fixture(scope="session")
def onnx_export(tmp_path_factory, trained) -> tuple[ExportedModel, bool, dict]:
    return export_onnx(tmp_path_factory.mktemp("azaion-onnx"), trained)


@pytest.fixture(scope="session")
def learned_onnx(tmp_path_factory, learned) -> tuple[ExportedModel, bool, dict]:
    return export_onnx(tmp_path_factory.mktemp("azaion-learned-onnx"), learned)


def run_parity(tmp_path: Path, exported: ExportedModel) -> tuple[bool, dict]:
    """The parity check alone on ``exported`` (an onnx_model record)."""
    result = dg.materialize(
        [*upstream("trained_model"), onnx_model, onnx_matches_pytorch],
        selection=dg.AssetSelection.checks(onnx_matches_pytorch),
        instance=seeded_instance(tmp_path, onnx_model=exported),
        resources=training_resources(tmp_path),
        raise_on_error=False,
    )
    return check_metadata(result)


def with_file(exported: ExportedModel, path: Path) -> ExportedModel:
    """The same export record pointing at another file."""
    return exported.model_copy(update={"file": exported.file.model_copy(update={"path": path})})


@pytest.mark.slow
def test_onnx_export_has_nms_dynamic_batch_and_class_names(onnx_export, trained):
    exported, passed, parity = onnx_export
    path = exported.file.path
    assert path.is_file() and path.parent.name == exported.file.sha256[:16]
    assert exported.file.size_bytes == path.stat().st_size
    assert exported.source == trained  # lineage: the very weights it was made from
    assert exported.imgsz == trained.imgsz and exported.file.format == "onnx"
    assert (exported.conf, exported.iou, exported.max_batch) == (0.25, 0.7, 8)

    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    assert "'ArmorVehicle'" in props["names"] and props["max_batch"] == "8"
    assert props["model_version"] == trained.model_version
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param  # symbolic: any batch size
    output_dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert output_dims[1:] == [300, 6]  # NMS inside: max_det rows of box, score, class

    assert passed, parity["reason"]
    assert abs(parity["pytorch_map50_95"] - parity["onnx_map50_95"]) <= 0.01
    assert parity["images"] > 0


@pytest.mark.slow
def test_parity_fails_on_a_corrupted_onnx(tmp_path, onnx_export):
    exported = onnx_export[0]
    broken = tmp_path / "broken.onnx"
    data = exported.file.path.read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # an interrupted copy
    passed, parity = run_parity(tmp_path, with_file(exported, broken))
    assert not passed
    assert "onnxruntime could not run" in parity["reason"]


@pytest.mark.slow
def test_parity_fails_on_an_onnx_with_other_class_names(tmp_path, onnx_export):
    exported = onnx_export[0]
    model = onnx.load(str(exported.file.path))
    for prop in model.metadata_props:
        if prop.key == "names":
            prop.value = prop.value.replace("'Truck'", "'Lorry'")
    wrong = tmp_path / "wrong.onnx"
    onnx.save(model, str(wrong))
    passed, parity = run_parity(tmp_path, with_file(exported, wrong))
    assert not passed
    assert "class names" in parity["reason"]


@pytest.mark.slow
def test_parity_compares_the_boxes_of_a_model_that_detects(learned_onnx, learned):
    exported, passed, parity = learned_onnx
    assert passed, parity["reason"]
    assert exported.imgsz == learned.imgsz
    assert parity["pytorch_boxes"] > 0 and parity["onnx_boxes"] > 0  # boxes were compared
    assert parity["matched_fraction"] >= 0.95 and parity["mean_matched_iou"] >= 0.9
    assert parity["pytorch_map50_95"] > 0.05  # a real score, not two zeros agreeing
    assert abs(parity["pytorch_map50_95"] - parity["onnx_map50_95"]) <= 0.01
    assert "not exercised" not in parity["reason"]


@pytest.mark.slow
def test_parity_uses_the_exports_own_conf_and_iou(tmp_path, learned, learned_onnx):
    strict, passed, parity = export_onnx(tmp_path, learned, conf=0.5, iou=0.45)
    assert (strict.conf, strict.iou) == (0.5, 0.45)
    assert passed, parity["reason"]
    assert (parity["conf"], parity["iou"]) == (0.5, 0.45)
    # A higher score threshold on both sides: fewer boxes compared than at the default 0.25.
    default_parity = learned_onnx[2]
    assert 0 < parity["pytorch_boxes"] < default_parity["pytorch_boxes"]
    assert parity["onnx_boxes"] < default_parity["onnx_boxes"]


def perturb_kernels(source: Path, target: Path) -> int:
    """Noise at each kernel's own spread on every conv kernel: a file that loads and runs but
    computes something else. (Noise on the single largest kernel alone moved only ~6% of the
    boxes, just past the 95% matched threshold, so this test uses a clear corruption.)"""
    model = onnx.load(str(source))
    rng = np.random.default_rng(0)
    kernels = [t for t in model.graph.initializer if len(t.dims) == 4]
    for tensor in kernels:
        weights = numpy_helper.to_array(tensor)
        noisy = weights + rng.normal(0.0, weights.std(), weights.shape)
        tensor.CopyFrom(numpy_helper.from_array(noisy.astype(weights.dtype), tensor.name))
    onnx.save(model, str(target))
    return len(kernels)


@pytest.mark.slow
def test_parity_fails_on_an_onnx_with_corrupted_weights(tmp_path, learned_onnx):
    exported = learned_onnx[0]
    corrupted = tmp_path / "corrupted.onnx"
    assert perturb_kernels(exported.file.path, corrupted) > 10
    passed, parity = run_parity(tmp_path, with_file(exported, corrupted))
    assert not passed
    assert "boxes have a same-class partner" in parity["reason"]  # it ran, and disagreed


@pytest.mark.slow
def test_parity_fails_on_the_export_of_another_model(tmp_path, weak, learned_onnx):
    other = export_onnx(tmp_path / "weak", weak)[0]  # same classes and size, other weights
    passed, parity = run_parity(tmp_path, with_file(learned_onnx[0], other.file.path))
    assert not passed
    assert "boxes have a same-class partner" in parity["reason"]


@pytest.mark.slow
def test_coreml_export_is_one_zip_and_its_spec_matches(tmp_path, trained):
    result = dg.materialize(
        [*upstream("trained_model"), coreml_model, coreml_spec_matches],
        instance=seeded_instance(tmp_path, trained_model=trained),
        resources=training_resources(tmp_path),
    )
    exported = result.output_for_node("coreml_model")
    assert exported.source == trained and exported.file.format == "coreml"
    with zipfile.ZipFile(exported.file.path) as bundle:
        names = bundle.namelist()
    assert names and all(n.startswith("azaion.mlpackage/") for n in names)
    assert any(n.endswith("Manifest.json") for n in names)
    passed, metadata = check_metadata(result)
    assert passed, metadata["problems"]
    assert metadata["input_shape"] == f"[{trained.imgsz}, {trained.imgsz}]"
    assert metadata["class_labels"] == 80
    assert "cannot" not in metadata["runtime"] and "only on Apple" in metadata["runtime"]


def test_tensorrt_is_skipped_with_a_reason_without_cuda(tmp_path, trained):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    instance = seeded_instance(tmp_path, trained_model=trained)
    result = dg.materialize(
        [*upstream("trained_model"), tensorrt_model],
        instance=instance,
        resources=training_resources(tmp_path),
    )
    assert result.success  # skipped, not failed
    record = result.output_for_node("tensorrt_model")
    assert record.engine is None and "no CUDA GPU" in record.skipped_reason
    assert "no CUDA GPU" in latest_metadata(instance, "tensorrt_model")["skipped_reason"]


def test_engine_filename_follows_azaion():
    assert engine_filename(8, 9, 128) == "azaion.cc_8.9_sm_128.engine"


def test_zipped_package_is_deterministic(tmp_path):
    package = tmp_path / "m.mlpackage"
    (package / "Data").mkdir(parents=True)
    (package / "Manifest.json").write_text("{}")
    (package / "Data" / "weights.bin").write_bytes(b"\0" * 100)
    first = zip_package(package, tmp_path / "a.zip").read_bytes()
    (package / "Manifest.json").touch()  # a newer mtime must not change the archive
    assert zip_package(package, tmp_path / "b.zip").read_bytes() == first
