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


# ----------------------------------------------------------------------------- the csv module's reading

def test_quoted_newlines_and_delimiters_are_kept(tmp_path):
    p = write(tmp_path, "q.csv", 'a,"b\nc","x,y",t\n1,2,3,"cat\ndog"\n4,5,6,cow\n7,8,9,"cat\ndog"\n')
    d = load_file(p)
    assert d.feature_names == ["a", "b\nc", "x,y"] and d.target_name == "t"
    assert d.classes == ["cat\ndog", "cow"]
    np.testing.assert_array_equal(d.y, [0, 1, 0])
    np.testing.assert_array_equal(d.X, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])


def test_line_numbers_count_physical_lines_of_multiline_records(tmp_path):
    p = write(tmp_path, "q.csv", 'a,t\n1,"cat\ndog"\n,cow\n')
    with pytest.raises(ValueError) as e:
        load_file(p)
    assert str(e.value) == f"{p}: line 4 (data row 2), column 'a': missing value; remove the row or fill it in"


def test_comma_file_with_semicolon_in_quoted_header_is_read_as_comma(tmp_path):
    p = write(tmp_path, "s.csv", '"x;y",b,t\n1,2,a\n3,4,b\n')
    d = load_file(p)
    assert d.feature_names == ["x;y", "b"] and d.classes == ["a", "b"]
    np.testing.assert_array_equal(d.X, [[1, 2], [3, 4]])


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_delimiter_guessed_from_whole_records(tmp_path, sep):
    # every other candidate appears inside quoted labels: only the real delimiter splits every record alike
    labels = ['"x,;\t|1"', '"y;,|\t2"']
    text = f"a{sep}b{sep}t\n1{sep}2.5{sep}{labels[0]}\n3{sep}4{sep}{labels[1]}\n5{sep}6{sep}{labels[0]}\n"
    d = load_file(write(tmp_path, "d.csv", text))
    assert d.feature_names == ["a", "b"] and d.classes == ["x,;\t|1", "y;,|\t2"]
    np.testing.assert_array_equal(d.X, [[1, 2.5], [3, 4], [5, 6]])
    np.testing.assert_array_equal(d.y, [0, 1, 0])


def test_explicit_delimiter(tmp_path):
    p = write(tmp_path, "d.txt", "a:b:t\n1:2:x\n3:4:y\n")
    d = load_file(p, delimiter=":")
    assert d.feature_names == ["a", "b"]
    np.testing.assert_array_equal(d.X, [[1, 2], [3, 4]])
    with pytest.raises(ValueError) as e:
        load_file(p)  # no delimiter of , ; tab | splits it: one column
    assert str(e.value) == (f"{p}: the header (line 1) has 1 column: need the features and a target column, "
                            "separated by commas, semicolons, tabs or |")
    with pytest.raises(ValueError) as e:
        load_file(p, delimiter="::")
    assert str(e.value) == (f"{p}: delimiter '::' is not one character other than a quote or a newline; give one "
                            "such as ',' ';' or '\\t'")


def test_bad_quoting_names_the_line(tmp_path):
    p = write(tmp_path, "b.csv", 'a,t\n1,x\n2,"ab"c\n')
    with pytest.raises(ValueError) as e:
        load_file(p)
    assert str(e.value) == (f"{p}: line 3: not valid CSV (',' expected after '\"'); check the quotes of that "
                            "record (a field with ',', a quote or a newline in it must be quoted, its quotes "
                            "doubled)")
    p = write(tmp_path, "u.csv", 'a,t\n1,x\n2,"open\n3,y\n')
    with pytest.raises(ValueError, match=r"u\.csv: line 3: not valid CSV \(unexpected end of data\)"):
        load_file(p)


def test_row_of_empty_cells_is_a_missing_value_error(tmp_path):
    p = write(tmp_path, "e.csv", "a,b,t\n1,2,x\n,,\n3,4,y\n")
    with pytest.raises(ValueError) as e:
        load_file(p)
    assert str(e.value) == (f"{p}: line 3 (data row 2): missing values (every cell is empty); remove the row or "
                            "fill it in")
    # blank lines (and a trailing newline) are not rows
    d = load_file(write(tmp_path, "b.csv", "a,t\n\n1,x\n\n2,y\n\n"))
    np.testing.assert_array_equal(d.X, [[1], [2]])


def test_integer_targets_stay_exact(tmp_path):
    p = write(tmp_path, "big.csv", "a,t\n1,9007199254740992\n2,9007199254740993\n3,9007199254740992\n")
    d = load_file(p)
    assert d.task == "classification"
    assert d.classes == [9007199254740992, 9007199254740993] and all(type(c) is int for c in d.classes)
    np.testing.assert_array_equal(d.y, [0, 1, 0])
    big = 2 ** 64 - 1
    u = load_file(write(tmp_path, "u.csv", f"a,t\n1,{big}\n2,1\n3,{big}\n4,-0\n"))
    assert u.classes == [0, 1, big] and u.classes[-1] > 0
    np.testing.assert_array_equal(u.y, [2, 1, 2, 0])
    # a trained model's classes are matched exactly too
    k = load_file(p, target="t", features=["a"], classes=[9007199254740993, 9007199254740992])
    np.testing.assert_array_equal(k.y, [1, 0, 1])
    with pytest.raises(ValueError, match="has the label '9007199254740993' at data row 2, which the model was not"):
        load_file(p, target="t", features=["a"], classes=[9007199254740992, 1])


def test_uint64_npz_labels_do_not_wrap(tmp_path):
    p = tmp_path / "u.npz"
    y = np.array([2 ** 64 - 1, 5, 2 ** 63, 5], dtype=np.uint64)
    np.savez(p, X=np.ones((4, 2)), y=y)
    d = load_file(p)
    assert d.classes == [5, 2 ** 63, 2 ** 64 - 1]
    np.testing.assert_array_equal(d.y, [2, 0, 1, 0])


def test_numeric_header_is_refused_naming_it(tmp_path):
    text = "150,4,setosa,versicolor,virginica\n5.1,3.5,1.4,0.2,0\n4.9,3.0,1.4,0.2,1\n7.0,3.2,4.7,1.4,2\n"
    p = write(tmp_path, "iris.csv", text)
    with pytest.raises(ValueError) as e:
        load_file(p)
    assert str(e.value) == (
        f"{p}: the header (line 1: 150,4,setosa,versicolor,virginica) holds numbers ('150', '4'): it looks like "
        "data, not column names; if the file has no header row, use --no-header (load_file(header=False)), which "
        "names the columns col0, col1, ...; if they are the names, use --header (header=True); if it is neither, "
        "delete the line")
    forced = load_file(p, header=True)
    assert forced.feature_names == ["150", "4", "setosa", "versicolor"] and forced.classes == [0, 1, 2]
    headerless = write(tmp_path, "raw.csv", text.split("\n", 1)[1])
    with pytest.raises(ValueError, match=r"the header \(line 1: 5\.1,3\.5,1\.4,0\.2,0\) holds numbers \('5\.1', "):
        load_file(headerless)
    d = load_file(headerless, header=False)
    assert d.feature_names == ["col0", "col1", "col2", "col3"] and d.target_name == "col4"
    assert d.classes == [0, 1, 2]
    np.testing.assert_array_equal(d.X[0], [5.1, 3.5, 1.4, 0.2])
    assert load_file(headerless, header=False, target="col0").task == "regression"
    with pytest.raises(ValueError) as e:
        load_file(headerless, header=False, target="x")
    assert str(e.value) == f"{headerless}: no column 'x' for the target; the columns are: col0, col1, col2, col3, col4"


def test_column_positions_as_names_are_a_header(tmp_path):
    # pandas' DataFrame(X).to_csv(): default column names 0, 1, ... (after an index column "")
    d = load_file(write(tmp_path, "p.csv", "0,1,label\n1.5,2,x\n3,4,y\n"))
    assert d.feature_names == ["0", "1"]
    d = load_file(write(tmp_path, "i.csv", ",0,1,label\n0,1.5,2,x\n1,3,4,y\n"), target="label")
    assert d.feature_names == ["", "0", "1"]


def test_numbers_read_as_python_reads_them(tmp_path):
    cells = [" 1.5 ", "+2", "1e-3", "-0", "0.1", "123456789012345678", "4.9406564584124654e-324", "1_0"]
    text = "a,b,t\n" + "".join(f"{c},{c},{'xy'[i % 2]}\n" for i, c in enumerate(cells))
    d = load_file(write(tmp_path, "n.csv", text))
    want = [float(c) for c in cells]
    assert d.X[:, 0].tolist() == want and d.X[:, 1].tolist() == want
    assert str(d.X[3, 0]) == "-0.0"
    # the target in the middle: the same values through the other path
    text = "a,t,b\n" + "".join(f"{c},{'xy'[i % 2]},{c}\n" for i, c in enumerate(cells))
    m = load_file(write(tmp_path, "m.csv", text), target="t")
    assert m.X.tolist() == d.X.tolist()


def test_messages_stay_one_line_when_names_and_labels_hold_newlines(tmp_path):
    p = write(tmp_path, "q.csv", 'a,"b\nc",t\n1,"x\ny","cat\ndog"\n')
    with pytest.raises(ValueError) as e:
        load_file(p)
    assert str(e.value) == (f"{p}: line 3 (data row 1), column 'b\\nc': 'x\\ny' is not a number; features must be "
                            "numeric (encode text categories as numbers first)")
    ok = write(tmp_path, "k.csv", 'a,"b\nc",t\n1,2,"cat\ndog"\n3,4,cow\n')
    with pytest.raises(ValueError) as e:
        load_file(ok, target="nope")
    assert str(e.value) == f"{ok}: no column 'nope' for the target; the columns are: a, 'b\\nc', t"
    with pytest.raises(ValueError) as e:
        load_file(ok, target="t", features=["a", "b\nc"], classes=["cat\ndog", "hen"])
    assert str(e.value) == (f"{ok}: target 't' has the label 'cow' at data row 2, which the model was not trained "
                            "on; its classes are: 'cat\\ndog', hen")


# ----------------------------------------------------------------------------- any table csv.writer writes

from hypothesis import given, settings, strategies as st  # noqa: E402

from deltaprop.data.files import DELIMITERS  # noqa: E402

_TEXT = st.text(alphabet=st.sampled_from(list("ab,;\t|\"\n\r' ")), max_size=6).map(lambda s: f"k{s}z")


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_table_csv_writer_writes_reads_back(tmp_path_factory, data):
    import csv

    delim = data.draw(st.sampled_from(DELIMITERS))
    n_feat = data.draw(st.integers(1, 3))
    names = data.draw(st.lists(_TEXT, min_size=n_feat + 1, max_size=n_feat + 1, unique=True))
    labels = data.draw(st.lists(_TEXT, min_size=2, max_size=5, unique=True))
    n = data.draw(st.integers(2, 8))
    y = [labels[i % len(labels)] for i in range(n)]
    X = data.draw(st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64),
                                    min_size=n_feat, max_size=n_feat), min_size=n, max_size=n))
    p = tmp_path_factory.mktemp("csv") / "t.csv"
    with open(p, "w", newline="") as f:
        w = csv.writer(f, delimiter=delim, quoting=csv.QUOTE_NONNUMERIC)
        w.writerow(names)
        w.writerows([[*row, lab] for row, lab in zip(X, y)])
    d = load_file(p)
    assert d.feature_names == names[:-1] and d.target_name == names[-1]
    used = sorted(set(y))
    assert d.classes == used
    assert [used[i] for i in d.y] == y
    assert d.X.tolist() == [[float(v) for v in row] for row in X]
    assert load_file(p, delimiter=delim).X.tolist() == d.X.tolist()


def test_delimiter_of_a_large_file_with_quoted_delimiters(tmp_path):
    # beyond the guessing sample (64 KiB): a quote in the wrong delimiter's fields is not excused
    rows = "".join(f'{i},"k;"";z{i}"\n' for i in range(12000))
    p = write(tmp_path, "big.csv", '"kz","k;z"\n' + rows)
    d = load_file(p, target="k;z")
    assert d.feature_names == ["kz"] and len(d.classes) == 12000 and d.X.shape == (12000, 1)


def test_a_quoting_error_is_excused_only_at_the_cut(tmp_path):
    from deltaprop.data.files import _field_counts

    sample = '"kz","k;z"\n' + "1,x\n" * 5
    assert _field_counts(sample, ",", cut=True) == ([2] * 5, True)  # the last record may be cut: dropped
    assert _field_counts(sample, ";", cut=True) == ([], False)  # a quote error on line 1 is real
    assert _field_counts('a,b\n1,"x\ny', ",", cut=True) == ([2], True)  # cut inside a quoted field
    assert _field_counts('a,b\n1,"x\ny', ",", cut=False) == ([2], False)


def test_numeric_header_is_shown_with_its_delimiter(tmp_path):
    p = write(tmp_path, "s.csv", "1.5;2;x\n3;4;y\n5;6;x\n")
    with pytest.raises(ValueError, match=r"s\.csv: the header \(line 1: 1\.5;2;x\) holds numbers \('1\.5', '2'\)"):
        load_file(p)
    p = write(tmp_path, "t.tsv", "1.5\t2\tx\n3\t4\ty\n")
    with pytest.raises(ValueError, match=r"t\.tsv: the header \(line 1: 1\.5, 2, x\) holds numbers"):
        load_file(p)
