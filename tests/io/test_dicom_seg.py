"""Tests of medseg.io.dicom_seg: DICOM-SEG written with highdicom, checked frame by frame with pydicom."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from medseg import Volume
from medseg.demo import make_phantom
from medseg.errors import DicomSeriesError, GeometryMismatchError
from medseg.io import read_dicom_series
from medseg.io.dicom_seg import read_dicom_seg, write_dicom_seg
from medseg.io.dicom_write import write_dicom_series

hd = pytest.importorskip("highdicom")


@pytest.fixture
def study(tmp_path):
    case = make_phantom(shape=(24, 20, 10), spacing_mm=(3.0, 3.0, 5.0), seed=1, n_lesions=2)
    image = case.image.replace(affine=case.image.affine @ np.diag([1.0, 1.0, 1.0, 1.0]))
    write_dicom_series(image, tmp_path / "ct", uid_seed="study")
    source = read_dicom_series(tmp_path / "ct")
    array = case.labels.array.copy()
    array[case.lesions.array > 0] = 4
    labels = Volume(array, source.affine, "labels", {1: "liver", 2: "spleen", 3: "kidney", 4: "lesion"})
    return source, labels


def test_frames_reference_source_and_match_voxels(study, tmp_path):
    source, labels = study
    path = write_dicom_seg(labels, source, tmp_path / "seg.dcm", uid_seed="seg")
    present = [int(v) for v in np.unique(labels.array) if v]
    seg = hd.seg.segread(path)
    assert [int(s.SegmentNumber) for s in seg.SegmentSequence] == list(range(1, len(present) + 1))
    names = {str(s.SegmentLabel): s for s in seg.SegmentSequence}
    assert names["liver"].SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"
    assert names["kidney"].SegmentedPropertyTypeCodeSequence[0].CodeValue == "64033007"
    assert names["lesion"].SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
    assert seg.SegmentationType == "BINARY"
    referenced = {
        item.ReferencedSOPInstanceUID
        for series in seg.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    assert referenced == set(source.meta["dicom"]["SOPInstanceUIDs"])
    raw = pydicom.dcmread(path)
    frames = raw.pixel_array
    uid_to_k = {uid: k for k, uid in enumerate(source.meta["dicom"]["SOPInstanceUIDs"])}
    number_to_value = dict(zip(range(1, len(present) + 1), present))
    checked = 0
    for frame, group in zip(frames, raw.PerFrameFunctionalGroupsSequence):
        uid = group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        k = uid_to_k[uid]
        np.testing.assert_array_equal(frame.astype(bool), (labels.array[:, :, k] == number_to_value[number]).T)
        checked += int(frame.sum())
    assert checked == int(np.count_nonzero(labels.array))  # every labelled voxel is in some frame


def test_read_back_with_and_without_reference(study, tmp_path):
    source, labels = study
    path = write_dicom_seg(labels, source, tmp_path / "seg.dcm")
    back = read_dicom_seg(path, reference=source)
    assert back.kind == "labels" and back.labels == labels.labels
    np.testing.assert_array_equal(back.array, labels.array)
    np.testing.assert_allclose(back.affine, source.affine)
    own = read_dicom_seg(path)  # SEG geometry only: may cover fewer slices, any slice order
    np.testing.assert_array_equal(own.resample_like(source, order=0).array, labels.array)


def test_non_consecutive_label_values_survive(study, tmp_path):
    source, labels = study
    sparse = labels.with_array(np.where(labels.array == 2, 7, np.where(labels.array == 1, 1, 0)).astype(np.uint8),
                               labels={1: "liver", 7: "tumour"})
    back = read_dicom_seg(write_dicom_seg(sparse, source, tmp_path / "s.dcm"), reference=source)
    np.testing.assert_array_equal(back.array, sparse.array)
    assert back.labels == {1: "liver", 7: "tumour"}


def test_bad_requests(study, tmp_path):
    source, labels = study
    with pytest.raises(GeometryMismatchError):
        write_dicom_seg(labels.crop((slice(0, 10), slice(None), slice(None))), source, tmp_path / "a.dcm")
    bare = Volume(source.array, source.affine)
    with pytest.raises(DicomSeriesError, match="read_dicom_series"):
        write_dicom_seg(labels, bare, tmp_path / "b.dcm")
    with pytest.raises(DicomSeriesError, match="empty"):
        write_dicom_seg(labels.with_array(np.zeros(labels.shape, np.uint8)), source, tmp_path / "c.dcm")
    assert not list(tmp_path.glob("*.dcm"))


def test_enhanced_multiframe_source(study, tmp_path):
    source, labels = study
    datasets = [pydicom.dcmread(p) for p in reversed(source.meta["dicom"]["files"])]
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        datasets, series_instance_uid=pydicom.uid.generate_uid(), series_number=5,
        sop_instance_uid=pydicom.uid.generate_uid(), instance_number=1,
    )
    enhanced.save_as(tmp_path / "enhanced.dcm")
    multi = read_dicom_series(tmp_path / "enhanced.dcm")
    np.testing.assert_allclose(multi.affine, source.affine, atol=1e-4)
    path = write_dicom_seg(labels, multi, tmp_path / "seg.dcm")
    back = read_dicom_seg(path, reference=multi)
    np.testing.assert_array_equal(back.array, labels.array)
