"""`publish-annotations` plays the platform: a folder goes onto the stream and comes back identical."""

from __future__ import annotations

from azaion_pipeline.cli import main
from azaion_pipeline.lib.classes import ClassCatalog
from azaion_pipeline.lib.intake.messages import Role
from azaion_pipeline.lib.intake.provenance import read_provenance
from azaion_pipeline.lib.layout import AzaionLayout
from azaion_pipeline.lib.sample_data import generate_sample_data
from azaion_pipeline.lib.settings import load_settings
from azaion_pipeline_tests.intake.conftest import consume, env_of


def _pairs(folder) -> dict[str, tuple[bytes, str]]:
    return {
        image.stem: (image.read_bytes(), (folder / "labels" / f"{image.stem}.txt").read_text())
        for image in (folder / "images").iterdir()
    }


def test_a_folder_round_trips_through_the_stream(stream_settings, tmp_path, monkeypatch, capsys):
    source = AzaionLayout.under(tmp_path / "platform")
    catalog = ClassCatalog.load(load_settings().resolved_classes_file())
    report = generate_sample_data(source, catalog, images=12, seed=3)
    for name, value in env_of(stream_settings, tmp_path / "unused").items():
        monkeypatch.setenv(name, value)

    assert main(["publish-annotations", "--root", str(source.root)]) == 0
    published = f"published {len(report.valid)} from data, {len(report.seed)} from data-seed"
    assert published in capsys.readouterr().out

    target = AzaionLayout.under(tmp_path / "azaion")
    assert consume(stream_settings, target.root).consumed == 12
    assert _pairs(target.data) == _pairs(source.data)
    assert _pairs(target.data_seed) == _pairs(source.data_seed)
    roles = {read_provenance(p).created_role for p in (target.data_seed / "images").iterdir()}
    assert roles == {Role.OPERATOR}
