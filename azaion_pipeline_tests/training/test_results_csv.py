"""results.csv after a resume: ultralytics appends the re-trained epochs again."""

from azaion_pipeline.lib.train import read_results_csv

HEADER = "                  epoch,  train/box_loss,  metrics/mAP50-95(B)\n"


def test_a_re_trained_epoch_counts_once_with_its_later_row(tmp_path):
    csv_file = tmp_path / "results.csv"
    # killed after epoch 2's row but before its checkpoint: the resume re-runs epoch 2
    csv_file.write_text(HEADER + "1, 6.5, 0.0\n2, 6.4, 0.01\n2, 6.3, 0.02\n3, 6.1, 0.05\n")

    rows = read_results_csv(csv_file)

    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert rows[1]["train/box_loss"] == 6.3
    assert rows[1]["metrics/mAP50-95(B)"] == 0.02


def test_no_results_file_means_no_epochs(tmp_path):
    assert read_results_csv(tmp_path / "results.csv") == []
