"""Dataset readers (MSD, nnU-Net v2 raw, CSV) and validation that reports every problem at once."""

from __future__ import annotations

import json

import numpy as np
import pytest

import medseg
from medseg.data import load_dataset
from medseg.demo import make_dataset, make_phantom
from medseg.errors import DatasetError, InputNotFoundError


@pytest.fixture(scope="module")
def msd(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("msd"), n_cases=3, shape=(16, 16, 16))


def test_msd_layout(msd):
    ds = load_dataset(msd)
    assert ds.layout == "msd"
    assert ds.case_ids == ["phantom_000", "phantom_001", "phantom_002"]
    assert ds.labels == {0: "background", 1: "liver", 2: "spleen", 3: "kidney"}
    assert ds.modality == "CT"
    case = ds.cases[1]
    assert case.image_paths == ((msd / "imagesTr" / "phantom_001.nii.gz").resolve(),)
    assert case.label_path == (msd / "labelsTr" / "phantom_001.nii.gz").resolve()


def _write_nnunet(root, n_cases=2, channels=("CT", "noNorm")):
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for i in range(n_cases):
        case = make_phantom(shape=(12, 12, 12), seed=i)
        for c in range(len(channels)):
            medseg.write(case.image, root / "imagesTr" / f"case{i}_{c:04d}.nii.gz")
        medseg.write(case.labels, root / "labelsTr" / f"case{i}.nii.gz")
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {str(c): m for c, m in enumerate(channels)},
        "labels": {"background": 0, "liver": 1, "spleen": 2, "kidney": 3},
        "numTraining": n_cases, "file_ending": ".nii.gz"}))
    return root


def test_nnunet_raw_layout_with_channel_suffixes(tmp_path):
    root = _write_nnunet(tmp_path / "Dataset001_Phantom")
    ds = load_dataset(root)
    assert ds.layout == "nnunet"
    assert ds.case_ids == ["case0", "case1"]
    assert ds.channel_names == ("CT", "noNorm")
    assert [p.name for p in ds.cases[0].image_paths] == ["case0_0000.nii.gz", "case0_0001.nii.gz"]
    assert ds.labels[3] == "kidney"


def test_csv_layout_relative_paths_and_inferred_labels(msd, tmp_path):
    csv = tmp_path / "cases.csv"
    rows = [f"{msd}/imagesTr/phantom_00{i}.nii.gz,{msd}/labelsTr/phantom_00{i}.nii.gz,p{i}"
            for i in range(2)]
    csv.write_text("image,label,case_id\n" + "\n".join(rows) + "\n")
    ds = load_dataset(csv, channel_names=["CT"])
    assert ds.layout == "csv" and ds.case_ids == ["p0", "p1"]
    assert ds.labels == {0: "background", 1: "label_1", 2: "label_2", 3: "label_3"}
    (tmp_path / "rel.csv").write_text("image,label\nimg.nii.gz,lab.nii.gz\n")
    with pytest.raises(DatasetError, match=r"missing file .*img\.nii\.gz"):
        load_dataset(tmp_path / "rel.csv", labels={0: "bg", 1: "x"})


def test_validation_lists_every_problem_with_file_names(tmp_path):
    root = make_dataset(tmp_path / "bad", n_cases=5, shape=(12, 12, 12))
    labels = root / "labelsTr"
    # 1: label on another grid
    lab = medseg.read(labels / "phantom_000.nii.gz")
    medseg.write(medseg.Volume.from_array(lab.array[:10], kind="labels"), labels / "phantom_000.nii.gz")
    # 2: undeclared label value
    lab = medseg.read(labels / "phantom_001.nii.gz")
    array = lab.array.copy()
    array[0, 0, 0] = 7
    medseg.write(lab.with_array(array), labels / "phantom_001.nii.gz")
    # 3: NaN voxels in the image
    img = medseg.read(root / "imagesTr" / "phantom_002.nii.gz")
    bad = img.array.copy()
    bad[1, 1, 1] = np.nan
    medseg.write(img.with_array(bad), root / "imagesTr" / "phantom_002.nii.gz")
    # 4: missing label file
    (labels / "phantom_003.nii.gz").unlink()
    with pytest.raises(DatasetError) as info:
        load_dataset(root, workers=2)
    message = str(info.value)
    assert "4 problem(s)" in message
    assert "phantom_000: label (10, 12, 12)" in message and "not on the image grid" in message
    assert "phantom_001: label values [7]" in message
    assert "phantom_002: phantom_002.nii.gz has 1 NaN" in message
    assert "phantom_003: missing file" in message
    assert "phantom_004" not in message


def test_bad_paths_raise_medseg_errors(tmp_path):
    with pytest.raises(InputNotFoundError):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="no dataset.json"):
        load_dataset(tmp_path)
