from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biorep.data.sources import encode_labels, natural_sorted, read_folder, read_manifest
from biorep.errors import DataError

from .conftest import blob, write_image


def test_folder_classes_are_immediate_parents_at_any_depth(tmp_path: Path) -> None:
    root = tmp_path / "set"
    write_image(root / "cell1" / "a" / "x.png", blob(8, 8))
    write_image(root / "cell1" / "b" / "y.png", blob(8, 8))
    write_image(root / "cell2" / "a" / "z.tif", blob(8, 8))
    write_image(root / "loose.npy", blob(8, 8))
    (root / "notes.txt").write_text("ignored")
    (root / "folder.tiff").mkdir()  # a folder with an image-like name is not a file
    src = read_folder(root)
    assert src.meta["path"].tolist() == ["cell1/a/x.png", "cell1/b/y.png", "cell2/a/z.tif", "loose.npy"]
    assert src.meta["label"].tolist() == ["a", "b", "a", None]
    classes, targets = encode_labels(src)
    assert classes == ["a", "b"] and targets.tolist() == [0, 1, 0, -1]


def test_images_at_mixed_depths_get_a_note(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "set"
    write_image(root / "a" / "x.png", blob(8, 8))
    write_image(root / "b" / "sub" / "y.png", blob(8, 8))
    assert read_folder(root).meta["label"].tolist() == ["a", "sub"]
    assert "images lie at different depths (a/x.png, b/sub/y.png)" in " ".join(caplog.text.split())
    caplog.clear()
    read_folder(root / "b")  # one depth: no note
    assert "different depths" not in caplog.text


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="no image files"):
        read_folder(tmp_path / "empty")


def test_manifest_relative_absolute_and_metadata(tmp_path: Path) -> None:
    write_image(tmp_path / "imgs" / "a.png", blob(8, 8))
    absolute = write_image(tmp_path / "elsewhere" / "b.png", blob(8, 8))
    man = tmp_path / "m.csv"
    pd.DataFrame({"file": ["imgs/a.png", str(absolute)], "compound": ["x", "y"], "plate": [1, 2]}).to_csv(man, index=False)
    src = read_manifest(man, path_column="file", label="compound", group="plate")
    assert src.files == [str(tmp_path / "imgs" / "a.png"), str(absolute)]
    assert list(src.meta.columns) == ["path", "compound", "plate"]
    assert src.label_column == "compound" and src.group_column == "plate"


def test_manifest_parquet(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", blob(8, 8))
    pd.DataFrame({"path": ["a.png"], "label": ["k"]}).to_parquet(tmp_path / "m.parquet")
    src = read_manifest(tmp_path / "m.parquet")
    assert src.label_column == "label" and src.files[0].endswith("a.png")


@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        ({"file": ["a.png"]}, {}, "no path column 'path'"),
        ({"path": ["a.png"]}, {"label": "dose"}, "no label column 'dose'"),
        ({"path": ["../../etc/passwd.png"]}, {}, "escapes the manifest folder"),
        ({"path": ["a.png", None]}, {}, "empty on line 3"),
    ],
)
def test_manifest_errors(tmp_path: Path, frame: dict, kwargs: dict, message: str) -> None:
    man = tmp_path / "m.csv"
    pd.DataFrame(frame).to_csv(man, index=False)
    with pytest.raises(DataError, match=message) as exc:
        read_manifest(man, **kwargs)
    assert "m.csv" in str(exc.value)


def test_declared_classes_fix_order_and_reject_unknown(tmp_path: Path) -> None:
    man = tmp_path / "m.csv"
    pd.DataFrame({"path": ["a.png", "b.png", "c.png"], "label": [2, 10, 1.0]}).to_csv(man, index=False)
    src = read_manifest(man)
    classes, t = encode_labels(src)
    assert classes == ["1", "2", "10"] and t.tolist() == [1, 2, 0]
    src = read_manifest(man)
    classes, t = encode_labels(src, ["10", "2", "1"])
    assert t.tolist() == [1, 0, 2]
    with pytest.raises(DataError, match="unknown class '10'"):
        encode_labels(read_manifest(man), ["1", "2"])


def test_natural_sort() -> None:
    assert natural_sorted(["clase10", "clase2", "clase1"]) == ["clase1", "clase2", "clase10"]
    assert np.all(np.array(natural_sorted(["10", "9", "X"])) == np.array(["9", "10", "X"]))


def test_manifest_labels_and_groups_are_read_as_written(tmp_path: Path) -> None:
    """Names are not numbers: ``01`` and ``1`` stay two classes, plates ``001``/``01``/``1`` three
    groups, ``NA`` and ``None`` are class names; only an empty cell is unlabeled."""
    man = tmp_path / "m.csv"
    man.write_text("path,label,plate\na.png,01,001\nb.png,1,01\nc.png,NA,1\nd.png,None,1\ne.png,,1\nf.png,2.0,1\n")
    src = read_manifest(man, group="plate")
    classes, t = encode_labels(src)
    assert classes == ["01", "1", "2", "NA", "None"]
    assert t.tolist() == [0, 1, 3, 4, -1, 2]
    assert src.meta["plate"].tolist() == ["001", "01", "1", "1", "1", "1"]


def test_a_class_spelled_like_a_missing_value_gets_a_note(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``NaN`` written by a spreadsheet stays a class, but the user is told how to mark "unlabeled";
    declared classes (the user named it on purpose) and ordinary names get no note."""
    man = tmp_path / "m.csv"
    man.write_text("path,label\na.png,x\nb.png,NaN\nc.png,NaN\nd.png,\n")
    classes, t = encode_labels(read_manifest(man))
    assert classes == ["NaN", "x"] and t.tolist() == [1, 0, 0, -1]
    assert "'NaN' (2 image(s)) spelled like a missing value" in " ".join(caplog.text.split())
    assert "m.csv" in caplog.text
    caplog.clear()
    encode_labels(read_manifest(man), ["x", "NaN"])
    assert "missing value" not in caplog.text
    man.write_text("path,label\na.png,x\nb.png,y\n")
    encode_labels(read_manifest(man))
    assert "missing value" not in caplog.text


def test_manifest_labels_with_spaces_around_them_are_one_class(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    man = tmp_path / "m.csv"
    man.write_text("path,label\na.png,a\nb.png,a \nc.png,b\n")
    classes, t = encode_labels(read_manifest(man))
    assert classes == ["a", "b"] and t.tolist() == [0, 0, 1]
    assert "spaces around them" in caplog.text and "'a '" in caplog.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,label,label\na.png,x,y\n", "'label' appear more than once in the header"),
        ("path,label\na.png,x,extra\nb.png,y,more\n", "line 2 has 3 fields, the header 2"),
        ("path,label\na.png,x\nb.png,y,extra\n", "line 3 has 3 fields, the header 2"),
        ("path,label,plate\na.png,x,1\nb.png,y\n", "line 3 has 2 fields, the header 3"),
        ('path,label\na.png,"x\nb.png,y\n', "cannot read manifest"),
    ],
)
def test_malformed_csv_manifests_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    man = tmp_path / "m.csv"
    man.write_text(text)
    with pytest.raises(DataError, match=message) as exc:
        read_manifest(man)
    assert "m.csv" in str(exc.value)


def test_a_symlink_loop_does_not_multiply_the_images(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for cls in ("a", "b"):
        for i in range(2):
            write_image(tmp_path / "imgs" / cls / f"{i}.png", blob(8, 8))
    (tmp_path / "imgs" / "a" / "loop").symlink_to("..")
    (tmp_path / "imgs" / "b_again").symlink_to("b")
    (tmp_path / "imgs" / "a" / "aliases").mkdir()
    (tmp_path / "imgs" / "a" / "aliases" / "a_link_met_first").symlink_to("../../b")  # walked before imgs/b
    src = read_folder(tmp_path / "imgs")
    assert list(src.meta["path"]) == ["a/0.png", "a/1.png", "b/0.png", "b/1.png"]
    assert "reached a second time through a symbolic link" in caplog.text


def test_empty_trailing_header_columns_are_not_duplicates(tmp_path: Path) -> None:
    """A spreadsheet export with empty trailing columns (``path,label,,``) reads as before."""
    man = tmp_path / "m.csv"
    man.write_text("path,label,,\na.png,x,,\nb.png,y,,\n")
    src = read_manifest(man)
    assert encode_labels(src)[0] == ["x", "y"]
    assert list(src.meta.columns) == ["path", "label"]  # no 'Unnamed: 2' / 'Unnamed: 3' metadata


def test_an_unnamed_column_with_values_is_kept(tmp_path: Path) -> None:
    man = tmp_path / "m.csv"
    man.write_text("path,label,\na.png,x,1\nb.png,y,\n")
    assert len(read_manifest(man).meta.columns) == 3


@pytest.mark.parametrize(
    ("encoding", "bom"), [("utf-8", ""), ("utf-8-sig", ""), ("utf-16", ""), ("utf-16-be", "\ufeff"), ("utf-32", "")]
)
def test_manifests_in_the_unicode_encodings_spreadsheets_write(tmp_path: Path, encoding: str, bom: str) -> None:
    man = tmp_path / "m.csv"
    man.write_bytes((bom + "path,label\na.png,café\nb.png,x\n").encode(encoding))
    src = read_manifest(man)
    assert list(src.meta.columns) == ["path", "label"]
    assert encode_labels(src)[0] == ["café", "x"]


def test_a_manifest_in_a_local_encoding_is_refused_naming_the_line(tmp_path: Path) -> None:
    man = tmp_path / "m.csv"
    man.write_bytes("path,label\na.png,x\nb.png,café\n".encode("cp1252"))
    with pytest.raises(DataError, match="m.csv: is not UTF-8 text: byte 0xe9 on line 3") as exc:
        read_manifest(man)
    assert "CSV UTF-8" in str(exc.value)


@pytest.mark.parametrize(("name", "text"), [
    ("m.csv", "sep=;\npath;label;dose\na.png;x;1,5\nb.png;y;2\n"),  # Excel's separator hint
    ("m.tsv", "path\tlabel\tdose\na.png\tx\t1,5\nb.png\ty\t2\n"),
])
def test_separator_hint_and_tab_separated_manifests(tmp_path: Path, name: str, text: str) -> None:
    man = tmp_path / name
    man.write_text(text)
    src = read_manifest(man)
    assert list(src.meta.columns) == ["path", "label", "dose"]
    assert src.meta["path"].tolist() == ["a.png", "b.png"] and encode_labels(src)[0] == ["x", "y"]


def test_messages_name_the_file_line_not_the_row_position(tmp_path: Path) -> None:
    """A blank line, a separator hint and a quoted line break move later rows down the file."""
    man = tmp_path / "m.csv"
    man.write_text('sep=,\npath,label,note\na.png,x,"two\nlines"\n\nb.png,y,\n,z,\n')
    with pytest.raises(DataError, match="column 'path' is empty on line 7"):
        read_manifest(man)
    man.write_text("path,label\na.png,x\n\nb.png,y\n\na.png,z\n")
    with pytest.raises(DataError, match=r"a.png \(lines 2, 6: 'x', 'z'\)"):
        read_manifest(man)


def test_decimal_labels_are_one_class_however_many_zeros_end_them(tmp_path: Path) -> None:
    man = tmp_path / "m.csv"
    man.write_text("path,dose\na.png,0.1\nb.png,0.10\nc.png,1.50\nd.png,01\ne.png,1\n")
    src = read_manifest(man, label="dose")
    assert encode_labels(src)[0] == ["0.1", "01", "1", "1.5"]
    classes, t = encode_labels(read_manifest(man, label="dose"), declared=["0.10", "1.5", "1", "01"])
    assert classes == ["0.1", "1.5", "1", "01"] and t.tolist() == [0, 0, 1, 3, 2]


def test_a_class_map_applies_to_labels_written_with_spaces(tmp_path: Path) -> None:
    from biorep.data.loader import apply_class_map

    man = tmp_path / "m.csv"
    man.write_text("path,label\na.png,a \nb.png,b\n")
    src = apply_class_map(read_manifest(man), {"a": "A", "b": "B"})
    assert encode_labels(src)[0] == ["A", "B"]


def test_a_link_to_an_image_file_is_that_image(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A file link in another class folder (or a manifest row naming the link) is the same pixels:
    read once from the folder; in a manifest, two labels for it are a conflict."""
    write_image(tmp_path / "imgs" / "a" / "x.png", blob(8, 8))
    write_image(tmp_path / "imgs" / "b" / "y.png", blob(8, 8))
    (tmp_path / "imgs" / "b" / "alias.png").symlink_to("../a/x.png")
    src = read_folder(tmp_path / "imgs")
    assert list(src.meta["path"]) == ["a/x.png", "b/y.png"]
    assert "symbolic links to images already found" in caplog.text
    man = tmp_path / "imgs" / "m.csv"
    man.write_text("path,label\na/x.png,a\nb/alias.png,b\n")
    with pytest.raises(DataError, match="listed more than once with different labels"):
        read_manifest(man)


def test_class_names_compare_in_one_unicode_form(tmp_path: Path) -> None:
    """A folder named on macOS (NFD 'café') and the same name typed in a config (NFC) are one class."""
    import unicodedata

    nfd, nfc = unicodedata.normalize("NFD", "café"), unicodedata.normalize("NFC", "café")
    assert nfd != nfc
    write_image(tmp_path / "imgs" / nfd / "x.png", blob(8, 8))
    write_image(tmp_path / "imgs" / "b" / "y.png", blob(8, 8))
    classes, t = encode_labels(read_folder(tmp_path / "imgs"), ["b", nfc])
    assert classes == ["b", nfc] and t.tolist() == [0, 1]  # b/y.png sorts first


def test_spreadsheet_exports_blank_rows_and_a_near_miss_label_column(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    man = tmp_path / "m.csv"
    man.write_text("path,Label\na.png,x\nb.png,y\n,\n,\n")
    src = read_manifest(man)
    assert len(src.files) == 2 and src.label_column is None
    assert "column 'Label' looks like one: set data.label: 'Label'" in caplog.text
