"""Nothing of the user's is lost: ``pages``, ``build`` and ``init`` replace or remove only the files
that filter-atlas wrote and nobody changed since, and refuse, in one line naming the file and
before writing anything, where a file in their way is the user's."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from filter_atlas.errors import AtlasError
from filter_atlas.pages import render_pages, write_pages

from .conftest import REPO, write_atlas

MKDOCS = REPO / "mkdocs.yml"
RECORD = ".filter-atlas-pages.json"
MINE = b"# My project\n\nWritten by hand.\n"


@pytest.fixture
def docs(tmp_path) -> Path:
    return tmp_path / "docs"


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes, by path relative to it."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def refused(err: str, path: str) -> bool:
    """Whether ``err`` is one line that names ``path`` and says it was not replaced."""
    return err.count("\n") == 1 and f"{path} is not a file filter-atlas wrote" in err


@pytest.mark.parametrize("mine", ["index.md", "blocks/mine.md"])
def test_users_pages_survive_pages_and_build(cli, tmp_path, mine):
    write_atlas(tmp_path / "docs/atlas", {"block1_conv1": [0, 2]})
    (tmp_path / "docs" / mine).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "docs" / mine).write_bytes(MINE)
    before = files(tmp_path)
    for args in (("pages",), ("build", "--no-render", "--mkdocs", MKDOCS, "--site", tmp_path / "site")):
        code, _, err = cli(*args)
        assert code == 2 and refused(err, f"docs/{mine}"), err
        assert files(tmp_path) == before  # nothing written: not the other pages, not the site
    (tmp_path / "docs" / mine).unlink()  # the user moves it away: the pages are written
    code, _, err = cli("build", "--no-render", "--mkdocs", MKDOCS, "--site", tmp_path / "site")
    assert code == 0, err
    assert (tmp_path / "site/index.html").is_file() and not (tmp_path / "site" / RECORD).exists()


def test_a_generated_page_edited_since_is_the_users(docs):
    write_atlas(docs / "atlas", {"block1_conv1": [0, 2], "block2_conv1": [1]})
    write_pages(docs / "atlas", docs)
    edited = (docs / "blocks/block2_conv1.md").read_bytes() + b"\nMy note on block 2.\n"
    (docs / "blocks/block2_conv1.md").write_bytes(edited)
    write_atlas(docs / "atlas", {"block1_conv1": [0, 2, 3]})  # block2_conv1.md stale, index.md changed
    before = files(docs)
    refusal = r"blocks/block2_conv1\.md is not a file filter-atlas wrote.*not deleting"
    with pytest.raises(AtlasError, match=refusal):
        write_pages(docs / "atlas", docs)
    assert files(docs) == before
    (docs / "index.md").write_bytes((docs / "index.md").read_bytes().replace(b"# Filter Atlas", b"# Mine"))
    with pytest.raises(AtlasError, match=r"index\.md is not a file filter-atlas wrote.*not overwriting") as e:
        write_pages(docs / "atlas", docs)
    assert "\n" not in str(e.value) and "1 other file likewise" in str(e.value)


def test_a_regenerated_page_is_updated_and_recorded(docs):
    write_atlas(docs / "atlas", {"block1_conv1": [0, 2]})
    write_pages(docs / "atlas", docs)
    first = (docs / "index.md").read_bytes()
    write_atlas(docs / "atlas", {"block1_conv1": [0, 2], "block3_conv1": [5]})
    pages = render_pages(docs / "atlas", docs)
    assert pages["index.md"].encode() != first
    write_pages(docs / "atlas", docs)
    assert (docs / "index.md").read_text("utf-8") == pages["index.md"]
    record = json.loads((docs / RECORD).read_text())["files"]
    assert record == {rel: hashlib.sha256(text.encode()).hexdigest() for rel, text in pages.items()}


def test_a_stale_generated_gallery_page_is_removed(docs):
    write_atlas(docs / "atlas", {"block1_conv1": [0], "block9_conv1": [1]})
    write_pages(docs / "atlas", docs)
    assert (docs / "blocks/block9_conv1.md").is_file()
    write_atlas(docs / "atlas", {"block1_conv1": [0]})
    assert write_pages(docs / "atlas", docs)[1] > 0
    assert sorted(p.name for p in (docs / "blocks").iterdir()) == ["block1_conv1.md"]
    assert "blocks/block9_conv1.md" not in json.loads((docs / RECORD).read_text())["files"]


def test_pages_written_before_the_record_are_adopted_if_current(docs):
    """A clone of a repository whose pages were committed without the record: pages equal to what
    the manifest gives are the tool's; one that differs may be the user's and is refused."""
    write_atlas(docs / "atlas", {"block1_conv1": [0, 2]})
    pages = render_pages(docs / "atlas", docs)
    for rel, text in pages.items():
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_text(text, "utf-8")
    write_pages(docs / "atlas", docs)  # adopts them: only the derived images are new
    assert {rel: (docs / rel).read_text("utf-8") for rel in pages} == pages and (docs / RECORD).is_file()
    (docs / RECORD).unlink()
    write_atlas(docs / "atlas", {"block1_conv1": [0, 2, 4]})
    with pytest.raises(AtlasError, match=r"index\.md is not a file filter-atlas wrote"):
        write_pages(docs / "atlas", docs)


def test_init_leaves_a_folder_with_the_users_docs_alone(cli, tmp_path):
    folder = tmp_path / "project"
    (folder / "docs").mkdir(parents=True)
    (folder / "docs/index.md").write_bytes(MINE)
    (folder / "README.md").write_text("mine\n")
    before = files(folder)
    code, out, err = cli("init", folder, "--model", "vgg16", "--weights", "random", "--size", "32",
                         "--layers", "block1_conv1", "--filters", "0", "--steps", "2", "--views", "channel")
    assert code == 2 and refused(err, "project/docs/index.md"), err
    assert files(folder) == before and out == ""
