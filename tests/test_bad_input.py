"""Every kind of bad input: one line on stderr, exit code 2, no traceback, nothing written."""

from pathlib import Path

import pytest


def _check(result, needle: str, tmp_path: Path) -> None:
    code, _, err = result
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("filter-atlas: error: "), err
    assert "Traceback" not in err
    assert needle in err, err
    assert not (tmp_path / "out").exists()


def render(cli, weights, *args):
    return cli("render", "--weights", weights, "--out", "out", "--size", "32", "--steps", "2", *args)


@pytest.mark.parametrize(("args", "needle"), [
    (("--layers", "block3_cnov2"), "did you mean 'block3_conv2'"),
    (("--layers", "block1_pool"), "is a MaxPooling2D, not a conv layer"),
    (("--layers", "block1_conv1", "--filters", "64"), "index 64 out of range for block1_conv1 (0..63)"),
    (("--layers", "block1_conv1", "--filters", "x"), "'all' or integers"),
    (("--layers", "block1_conv1", "--size", "16"), "below vgg16's minimum of 32 px"),
    (("--layers", "block1_conv1", "--steps", "0"), "--steps must be positive"),
    (("--layers", "block1_conv1", "--steps", "-5"), "--steps must be positive"),
    (("--layers", "block1_conv1", "--recipe", "dream"), "unknown recipe 'dream'"),
    (("--model", "vgg61", "--precision", "fp8"), "unknown precision 'fp8'"),  # before the model loads
    (("--model", "vgg61"), "unknown model 'vgg61'"),
    (("--layers", "block1_conv1", "--shard", "3/2"), "need 1 <= i <= n"),
    (("--model", "vgg61", "--shard", "3/2"), "need 1 <= i <= n"),  # checked before the model loads
    (("--layers", "block1_conv1", "--seed", "-1"), "--seed must be 0 or more"),
    (("--layers", "block1_conv1", "--size", "100000"), "above the maximum side of 4096 px"),
    (("--layers", "block1_conv1", "--size", "64x100000"), "above the maximum side of 4096 px"),
    (("--config", "absent.toml"), "--config absent.toml: no such file"),
    (("--layers", ""), "--layers names no layer"),  # not: every layer
    (("--layers", " , "), "--layers names no layer"),
    (("--layers", "block1_conv1", "--views-size", "4"), "--views-size 4 is below vgg16's minimum of 32 px"),
    (("--layers", "block1_conv1", "--views-size", "5000"), "--views-size 5000 is above the maximum side"),
])
def test_bad_render_arguments(cli, weights_path, tmp_path, args, needle):
    _check(render(cli, weights_path, *args), needle, tmp_path)


def test_missing_and_corrupt_weights(cli, tmp_path):
    _check(render(cli, tmp_path / "nope.h5"), "weights file not found", tmp_path)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 100)
    _check(render(cli, junk), "cannot load weights from", tmp_path)


def test_weights_of_another_model(cli, tiny_model_path, tmp_path):
    _check(render(cli, tiny_model_path), "cannot load weights from", tmp_path)


def test_corrupt_model_file(cli, tmp_path):
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    _check(cli("render", "--model", bad, "--out", "out"), "cannot load model", tmp_path)
    _check(cli("layers", "--model", tmp_path / "absent.keras"), "model file not found", tmp_path)


def test_offline_without_local_weights(cli, tmp_path, monkeypatch):
    from keras.src.utils import file_utils

    def offline(*_args, **_kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline)
    _check(cli("render", "--out", "out", "--size", "32"), "--weights PATH or FILTER_ATLAS_WEIGHTS=PATH",
           tmp_path)


def test_unwritable_output_directory(cli, weights_path, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = cli("render", "--weights", weights_path, "--layers", "block1_conv1",
                       "--out", blocker / "atlas")
    assert code == 2 and "is not writable" in err and err.count("\n") == 1
    assert blocker.read_text() == "not a directory"


@pytest.mark.parametrize(("toml", "needle"), [
    ("[tool.filter-atlas]\nsample = 'six'\n", "sample must be int"),
    ("[tool.filter-atlas]\ncolour = 1\n", "unknown key 'colour'"),
    ("[tool.filter-atlas]\nprecision = 'half'\n", "unknown precision 'half'"),
    ("[tool.filter-atlas\n", "not valid TOML"),
])
def test_malformed_config(cli, tmp_path, toml, needle):
    (tmp_path / "pyproject.toml").write_text(toml)
    _check(cli("render", "--out", "out"), needle, tmp_path)


def test_argument_errors_are_one_line(cli, capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli("render", "--steps", "big")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("filter-atlas render: error:") and err.count("\n") == 1, err


def test_merge_of_incomplete_shards(cli, tmp_path):
    _check(cli("merge", tmp_path / "nowhere", "--out", "out"), "cannot read shard manifest", tmp_path)
