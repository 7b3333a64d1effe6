"""GitHub Actions workflows: schema-valid, no zizmor findings, and in step with the CLI."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from filter_atlas.cli import _parser

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))


def tool(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        pytest.fail(f"{name} is not installed (it is in the test extra)")
    return path


def test_the_three_workflows_exist():
    assert [f.name for f in FILES] == ["ci.yml", "publish.yml", "regenerate.yml"]


def test_workflows_match_the_github_schema():
    done = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *FILES],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_finds_nothing():
    done = subprocess.run([tool("zizmor"), "--offline", "--no-progress", str(WORKFLOWS)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings to report" in done.stdout + done.stderr


def test_every_action_is_pinned_to_a_commit():
    uses = [u for f in FILES for u in re.findall(r"uses:\s*(\S+)", f.read_text())]
    assert uses and all(re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u) for u in uses), uses


def test_regenerate_renders_shards_and_merges_with_real_cli_flags():
    text = (WORKFLOWS / "regenerate.yml").read_text()
    parser = _parser()
    args = parser.parse_args(["render", "--model", "vgg16", "--recipe", "lucid", "--size", "224",
                              "--shard", "1/2", "--out", "shard", "--quiet", "--layers", "a", "--steps", "9",
                              "--sample", "6"])
    assert args.shard == "1/2"
    for flag in re.findall(r"--[a-z-]+", text.split("args=(", 1)[1].split("filter-atlas render", 1)[0]):
        assert flag in parser._subparsers._group_actions[0].choices["render"].format_help(), flag
    assert parser.parse_args(["merge", "a", "b", "--out", "docs/atlas"]).shard_dirs == [Path("a"), Path("b")]
    assert "filter-atlas merge shards/shard-* --out docs/atlas" in text
    assert "fromJSON(vars.GPU_RUNNER_LABELS" in text and "matrix:" in text
