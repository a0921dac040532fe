"""deltaprop.data.load_file: CSV, .npz and .npy pairs; every bad-file case is one clear line."""
import re

import numpy as np
import pytest

from deltaprop.data import FileData, load_file


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_csv_string_target_classes_sorted(tmp_path):
    p = write(tmp_path, "flowers.csv", "a,b,species\n1,2.5,virginica\n3,-4,setosa\n5,6e1,virginica\n")
    d = load_file(p, target="species")
    assert isinstance(d, FileData)
    np.testing.assert_array_equal(d.X, [[1, 2.5], [3, -4], [5, 60.0]])
    assert d.X.dtype == np.float64
    assert d.classes == ["setosa", "virginica"]
    np.testing.assert_array_equal(d.y, [1, 0, 1])
    assert d.y.dtype == np.int64
    assert d.task == "classification"
    assert d.feature_names == ["a", "b"] and d.target_name == "species"
    X, y, classes = d  # unpacks as a triple
    assert classes == ["setosa", "virginica"]


def test_csv_target_default_last_column_and_middle_column(tmp_path):
    p = write(tmp_path, "t.csv", "x,label,z\n1,7,2\n3,9,4\n5,7,6\n")
    last = load_file(p)
    assert last.target_name == "z" and last.task == "classification" and last.classes == [2, 4, 6]
    mid = load_file(p, target="label")
    np.testing.assert_array_equal(mid.X, [[1, 2], [3, 4], [5, 6]])
    assert mid.classes == [7, 9] and all(type(c) is int for c in mid.classes)
    np.testing.assert_array_equal(mid.y, [0, 1, 0])


def test_csv_float_target_is_regression_and_task_override(tmp_path):
    p = write(tmp_path, "r.csv", "x;y\n1;0.5\n2;1.25\n3;-2\n")  # semicolon-separated
    d = load_file(p)
    assert d.task == "regression" and d.classes is None
    np.testing.assert_array_equal(d.y, [0.5, 1.25, -2.0])
    assert d.y.dtype == np.float64
    ints = write(tmp_path, "i.csv", "x\ty\n1\t3\n2\t5\n3\t3\n")  # tab-separated
    assert load_file(ints).task == "classification"
    r = load_file(ints, task="regression")
    assert r.task == "regression" and r.classes is None
    np.testing.assert_array_equal(r.y, [3.0, 5.0, 3.0])
    c = load_file(p, task="classification")
    assert c.classes == [-2.0, 0.5, 1.25]
    np.testing.assert_array_equal(c.y, [1, 2, 0])


def test_many_distinct_integers_are_regression(tmp_path):
    rows = "\n".join(f"{i},{i * 3}" for i in range(150))
    assert load_file(write(tmp_path, "c.csv", "x,count\n" + rows + "\n")).task == "regression"


@pytest.mark.parametrize("text, message", [
    ("", "empty.csv: the file is empty; expected a header row and one row per sample"),
    ("\n\n", "empty.csv: the file is empty; expected a header row and one row per sample"),
    ("a,b,c\n", "empty.csv: the file has a header but no data rows"),
])
def test_csv_empty(tmp_path, text, message):
    p = write(tmp_path, "empty.csv", text)
    with pytest.raises(ValueError) as e:
        load_file(p, target="c")
    assert str(e.value) == f"{tmp_path}/{message}"


def test_csv_missing_value_names_line_row_column(tmp_path):
    p = write(tmp_path, "m.csv", "a,b,t\n1,2,x\n3,,y\n")
    with pytest.raises(ValueError) as e:
        load_file(p, target="t")
    assert str(e.value) == f"{p}: line 3 (data row 2), column 'b': missing value; remove the row or fill it in"
    p2 = write(tmp_path, "m2.csv", "a,b,t\n1,NA,x\n3,4,y\n")
    with pytest.raises(ValueError, match=r"line 2 \(data row 1\), column 'b': missing value"):
        load_file(p2, target="t")


def test_csv_missing_target_value(tmp_path):
    p = write(tmp_path, "m.csv", "a,t\n1,x\n3,\n2,y\n")
    with pytest.raises(ValueError, match=r"m\.csv: line 3 \(data row 2\), column 't': missing target value"):
        load_file(p)


def test_csv_non_numeric_feature(tmp_path):
    p = write(tmp_path, "n.csv", "a,colour,t\n1,2,x\n3,red,y\n")
    with pytest.raises(ValueError) as e:
        load_file(p, target="t")
    assert str(e.value) == (f"{p}: line 3 (data row 2), column 'colour': 'red' is not a number; features must "
                            "be numeric (encode text categories as numbers first)")


def test_csv_inf_feature(tmp_path):
    p = write(tmp_path, "n.csv", "a,t\ninf,x\n3,y\n")
    with pytest.raises(ValueError, match=r"line 2 \(data row 1\), column 'a': 'inf' is not a finite number"):
        load_file(p)


def test_csv_target_column_missing_lists_columns(tmp_path):
    p = write(tmp_path, "c.csv", "radius,texture,diagnosis\n1,2,M\n3,4,B\n")
    with pytest.raises(ValueError) as e:
        load_file(p, target="label")
    assert str(e.value) == f"{p}: no column 'label' for the target; the columns are: radius, texture, diagnosis"


def test_csv_one_class_only(tmp_path):
    p = write(tmp_path, "o.csv", "a,t\n1,cat\n2,cat\n")
    with pytest.raises(ValueError) as e:
        load_file(p)
    assert str(e.value) == (f"{p}: target 't' has one class only ('cat' in all 2 rows); classification needs "
                            "at least two")


def test_csv_ragged_row_and_single_column(tmp_path):
    p = write(tmp_path, "r.csv", "a,b,t\n1,2,x\n3,4\n")
    with pytest.raises(ValueError, match=r"line 3 \(data row 2\) has 2 fields but the header has 3"):
        load_file(p)
    p = write(tmp_path, "s.csv", "a\n1\n2\n")
    with pytest.raises(ValueError, match=r"s\.csv: the header \(line 1\) has 1 column"):
        load_file(p)


def test_csv_text_target_as_regression_refused(tmp_path):
    p = write(tmp_path, "t.csv", "a,t\n1,cat\n2,dog\n")
    with pytest.raises(ValueError, match=r"target 't' holds text \('cat'\), not numbers"):
        load_file(p, task="regression")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ValueError, match=r"nope\.csv: no such file"):
        load_file(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="is a directory"):
        load_file(tmp_path)
    with pytest.raises(ValueError, match="task must be one of classification, regression"):
        load_file(tmp_path, task="ranking")


def test_binary_file_as_csv(tmp_path):
    p = tmp_path / "b.csv"
    p.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(ValueError, match=r"b\.csv: not a text \(UTF-8\) CSV file"):
        load_file(p)


def test_npz(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 3)).astype(np.float32)
    y = np.array([0, 1] * 5)
    p = tmp_path / "d.npz"
    np.savez(p, X=X, y=y, other=y * 0.5)
    d = load_file(p)
    np.testing.assert_array_equal(d.X, X.astype(np.float64))
    np.testing.assert_array_equal(d.y, y)
    assert d.classes == [0, 1] and d.feature_names == ["x0", "x1", "x2"]
    r = load_file(p, target="other")
    assert r.task == "regression"
    np.testing.assert_array_equal(r.y, y * 0.5)
    with pytest.raises(ValueError) as e:
        load_file(p, target="labels")
    assert str(e.value) == f"{p}: no array 'labels'; it has X, y, other (expected X (N, features) and labels (N,))"


def test_npz_string_labels_and_images(tmp_path):
    p = tmp_path / "img.npz"
    np.savez(p, X=np.zeros((4, 8, 8), np.uint8), y=np.array(["b", "a", "b", "a"]))
    d = load_file(p)
    assert d.X.shape == (4, 8, 8) and d.classes == ["a", "b"]
    np.testing.assert_array_equal(d.y, [1, 0, 1, 0])


def test_npz_bad_cases(tmp_path):
    p = tmp_path / "nan.npz"
    X = np.ones((3, 2))
    X[1, 1] = np.nan
    np.savez(p, X=X, y=np.array([0, 1, 0]))
    with pytest.raises(ValueError) as e:
        load_file(p)
    assert str(e.value) == f"{p}: array 'X': missing value (NaN) at row 1, column 1 (rows and columns counted from 0)"
    p = tmp_path / "len.npz"
    np.savez(p, X=np.ones((3, 2)), y=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"array 'y' has shape \(2,\); expected \(3,\)"):
        load_file(p)
    p = tmp_path / "empty.npz"
    np.savez(p, X=np.ones((0, 2)), y=np.array([], dtype=int))
    with pytest.raises(ValueError, match=r"array 'X' has shape \(0, 2\); expected \(samples, features\)"):
        load_file(p)
    p = tmp_path / "obj.npz"
    np.savez(p, X=np.array([[1, "a"]], dtype=object), y=np.array([0]))
    with pytest.raises(ValueError, match="not a readable NumPy array"):
        load_file(p)
    p = tmp_path / "notzip.npz"
    p.write_bytes(b"hello")
    with pytest.raises(ValueError, match=r"notzip\.npz: not an \.npz archive"):
        load_file(p)
    p = tmp_path / "one.npz"
    np.savez(p, X=np.ones((3, 2)), y=np.array([4, 4, 4]))
    with pytest.raises(ValueError, match="target 'y' has one class only"):
        load_file(p)


def test_npy_pair(tmp_path):
    X = np.arange(12.0).reshape(6, 2)
    y = np.array([0.5, 1, 2, 3, 4, 5.5])
    np.save(tmp_path / "train_X.npy", X)
    np.save(tmp_path / "train_y.npy", y)
    d = load_file(tmp_path / "train_X.npy")
    assert d.task == "regression" and d.target_name == str(tmp_path / "train_y.npy")
    np.testing.assert_array_equal(d.X, X)
    np.testing.assert_array_equal(d.y, y)
    np.save(tmp_path / "labels.npy", np.array([1, 2, 1, 2, 1, 2]))
    c = load_file(tmp_path / "train_X.npy", target=str(tmp_path / "labels.npy"))
    assert c.classes == [1, 2]
    np.save(tmp_path / "feats.npy", X)
    with pytest.raises(ValueError, match="holds the features only; give the target .npy file too"):
        load_file(tmp_path / "feats.npy")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path}/missing.npy: no such file (the target array of")):
        load_file(tmp_path / "feats.npy", target=str(tmp_path / "missing.npy"))
    (tmp_path / "bad_X.npy").write_bytes(b"not numpy")
    np.save(tmp_path / "bad_y.npy", y)
    with pytest.raises(ValueError, match=r"bad_X\.npy: not a readable NumPy array"):
        load_file(tmp_path / "bad_X.npy")
