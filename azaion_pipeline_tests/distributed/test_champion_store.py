"""The champion through the object store: promoted on one host, usable on a host whose Azaion
root is empty (a GPU worker), against a real S3 server."""

from __future__ import annotations

from azaion_pipeline.defs.store import PipelineStore
from azaion_pipeline.lib.champion import promote_champion
from azaion_pipeline.lib.hashing import sha256_file
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.train import INIT_CHAMPION, resolve_init


def promoted(tmp_path, layout: AzaionLayout):
    weights, onnx = tmp_path / "best.pt", tmp_path / "best.onnx"
    weights.write_bytes(b"weights of the champion " * 64)
    onnx.write_bytes(b"its onnx export " * 64)
    return promote_champion(
        layout,
        weights,
        sha256_file(weights),
        model_version="m-1",
        dataset_version="v-1",
        onnx=onnx,
        onnx_sha256=sha256_file(onnx),
    )


def test_a_host_with_an_empty_root_warm_starts_from_the_stored_champion(tmp_path, pipeline_store):
    cpu_host, gpu_host = AzaionLayout.under(tmp_path / "cpu"), AzaionLayout.under(tmp_path / "gpu")
    champion = promoted(tmp_path, cpu_host)
    assert pipeline_store.champion(gpu_host) is None  # only the cpu host's root has it

    pipeline_store.share_champion(champion)
    record = pipeline_store.champion(gpu_host, with_files=False)  # what retention asks
    assert record is not None and record.dataset_version == "v-1"
    assert not pipeline_store.node_cache(gpu_host.root).root.exists()  # nothing downloaded
    found = pipeline_store.champion(gpu_host)
    assert found is not None
    assert (found.model_version, found.dataset_version) == ("m-1", "v-1")
    node_cache = pipeline_store.node_cache(gpu_host.root).root
    assert found.weights.is_relative_to(node_cache) and found.onnx.is_relative_to(node_cache)
    assert sha256_file(found.weights) == champion.weights_sha256
    assert sha256_file(found.onnx) == champion.onnx_sha256
    # What failed before: init 'champion' on the GPU host.
    assert resolve_init(INIT_CHAMPION, found.weights) == (found.weights, champion.weights_sha256)


def test_without_the_store_the_root_champion_is_read(tmp_path):
    layout = AzaionLayout.under(tmp_path / "one-host")
    champion = promoted(tmp_path, layout)
    store = PipelineStore()
    store.share_champion(champion)  # no store: nothing to do, nothing raised
    assert store.champion(layout) == champion
    assert store.champion(AzaionLayout.under(tmp_path / "elsewhere")) is None
