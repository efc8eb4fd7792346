"""The exact-text index beside chromadb (``knowledge/lexical.py``): the same answers as
chromadb's ``$contains``, kept in step with the collection through every write, rebuilt
when out of step, dropped with its collection."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from aiide_server_ext.knowledge import index as ix
from aiide_server_ext.knowledge.chunking import Chunk, defined_names
from aiide_server_ext.knowledge.lexical import IndexedCollection, Lexical, _table

from .fake_embeddings import vector

DIM = 64

FILES = {
    "lib/clean.py": [
        "def drop_outliers(frame):\n    return frame[frame.z < 3]",
        "def normalize_readings(frame):\n    return drop_outliers(frame) / frame.max()",
    ],
    "lib/plot.py": [
        "import matplotlib\n\ndef plot_sales(frame):\n    frame.plot()  # Drop_Outliers first?",
        'LABEL = "say \\"hi\\" to df.groupby(\\"region\\")"',
    ],
    "notes.md": ["We call drop_outliers before plotting the hourly sensor readings."],
}


class HashEmbedder:
    model_id = "hash:64"

    def embed(self, texts: Any) -> list[list[float]]:
        return [vector(t, DIM) for t in texts]

    def chroma_function(self) -> Any:
        return None


def chunks(path: str, texts: list[str], first_line: int = 1) -> list[Chunk]:
    return [
        Chunk(path, "python", t, "", -1, first_line + i, first_line + i, "", defined_names(t))
        for i, t in enumerate(texts)
    ]


def fill(col: Any, files: dict[str, list[str]] = FILES) -> None:
    embed = HashEmbedder().embed
    ix.write_files(col, [(p, chunks(p, t)) for p, t in files.items()], embed)


def raw_contains(col: Any, word: str) -> set[str]:
    raw = col._col if isinstance(col, IndexedCollection) else col
    return set(raw.get(where_document={"$contains": word}, include=[])["ids"])


def raw_defining(col: Any, name: str) -> set[str]:
    return set(col._col.get(where={"symbols": {"$contains": name}}, include=[])["ids"])


@pytest.fixture
def store(tmp_path: Path) -> ix.Store:
    return ix.Store(HashEmbedder(), path=str(tmp_path / "chroma"))  # type: ignore[arg-type]


WORDS = [
    "drop_outliers",
    "Drop_Outliers",
    "rop_outl",
    "frame.max",
    'say \\"hi',
    "df.groupby(",
    "nowhere_at_all",
]


@pytest.mark.parametrize("word", WORDS)
def test_lookups_answer_what_chromadbs_contains_answers(store: ix.Store, word: str) -> None:
    col = store.collection("ada", "/ws")
    assert isinstance(col, IndexedCollection)
    fill(col)
    assert set(col.contains(word, 50)) == raw_contains(col, word)


@pytest.mark.parametrize("name", ["drop_outliers", "normalize_readings", "plot_sales", "frame"])
def test_definitions_are_those_chromadbs_symbols_filter_finds(store: ix.Store, name: str) -> None:
    col = store.collection("ada", "/ws")
    fill(col)
    assert set(col.defining(name, 50)) == raw_defining(col, name)
    assert raw_defining(col, "drop_outliers")  # the corpus defines names


def test_search_ranks_the_same_with_and_without_the_index(store: ix.Store) -> None:
    col = store.collection("ada", "/ws")
    fill(col)
    questions = (
        "which file calls drop_outliers?",
        "where is `frame.max` used",
        "plot_sales",
        "normalize_readings",
    )
    for question in questions:
        query = vector(question, DIM)
        fast = ix.search(col, query, question, 5)
        plain = ix.search(col._col, query, question, 5)
        assert [(h.chunk.path, h.chunk.text, h.score, h.exact) for h in fast] == [
            (h.chunk.path, h.chunk.text, h.score, h.exact) for h in plain
        ]
    # A defined name finds its definition; one nothing defines, the texts holding it
    # (case-sensitively, as chromadb's $contains).
    hits = ix.search(col, vector("x", DIM), "who uses drop_outliers", 5)
    assert {h.chunk.text.split("(")[0] for h in hits if h.exact} == {"def drop_outliers"}
    hits = ix.search(col, vector("x", DIM), "where is `Drop_Outliers` mentioned", 5)
    assert {h.chunk.path for h in hits if h.exact} == {"lib/plot.py"}


def test_every_write_keeps_the_index_in_step(store: ix.Store) -> None:
    col = store.collection("ada", "/ws")
    fill(col)
    lexical, chroma = col.lexical, col._col
    assert lexical.count(col.name) == chroma.count() == 5
    # An edit replaces a file's chunks: the old text goes, the new one is found.
    fill(col, {"notes.md": ["We now call remove_spikes before plotting."]})
    assert set(col.contains("remove_spikes", 10)) == raw_contains(col, "remove_spikes") != set()
    assert raw_contains(col, "hourly") == set() and col.contains("hourly", 10) == []
    # A rename re-keys the chunks; a removal deletes them; counts stay equal throughout.
    ix.move_path(col, "lib/plot.py", "lib/charts.py")
    assert lexical.count(col.name) == chroma.count()
    assert set(col.contains("plot_sales", 10)) == raw_contains(col, "plot_sales") != set()
    ix.remove_paths(col, ["lib/clean.py"])
    assert lexical.count(col.name) == chroma.count() == 3
    assert col.contains("normalize_readings", 10) == []
    # The same text at new lines: metadata only, the chunk and what it defines stay found.
    fill(col, {"lib/charts.py": ["# moved down", *FILES["lib/plot.py"]]})
    assert set(col.defining("plot_sales", 10)) == raw_defining(col, "plot_sales") != set()
    assert lexical.count(col.name) == chroma.count()
    # A delete by filter learns its ids first.
    col.delete(where={"path": "lib/charts.py"})
    assert lexical.count(col.name) == chroma.count() == 1
    assert col.defining("plot_sales", 10) == []


def test_an_out_of_step_index_is_rebuilt_when_the_collection_opens(tmp_path: Path) -> None:
    first = ix.Store(HashEmbedder(), path=str(tmp_path / "chroma"))  # type: ignore[arg-type]
    col = first.collection("ada", "/ws")
    fill(col)
    name = col.name
    lexical_file = tmp_path / "lexical.sqlite"
    assert lexical_file.exists()
    # As if the index had been made before this existed, or a crash lost its last write.
    db = sqlite3.connect(lexical_file)
    t = _table(name)
    db.execute(f"DELETE FROM {t}")
    db.execute(f"DELETE FROM {t}_ids")
    db.commit()
    db.close()
    again = ix.Store(HashEmbedder(), path=str(tmp_path / "chroma"))  # type: ignore[arg-type]
    col = again.collection("ada", "/ws")
    assert col.lexical.count(name) == 5
    assert set(col.contains("drop_outliers", 10)) == raw_contains(col, "drop_outliers")


def test_a_file_of_an_older_layout_is_emptied_and_rebuilt(tmp_path: Path) -> None:
    first = ix.Store(HashEmbedder(), path=str(tmp_path / "chroma"))  # type: ignore[arg-type]
    fill(first.collection("ada", "/ws"))
    db = sqlite3.connect(tmp_path / "lexical.sqlite")
    db.execute("PRAGMA user_version = 1")  # the first layout had no table of definitions
    db.commit()
    db.close()
    col = ix.Store(HashEmbedder(), path=str(tmp_path / "chroma")).collection("ada", "/ws")  # type: ignore[arg-type]
    assert col.lexical.count(col.name) == 5
    assert set(col.defining("drop_outliers", 10)) == raw_defining(col, "drop_outliers") != set()


def test_dropping_a_collection_drops_its_index_and_users_stay_apart(store: ix.Store) -> None:
    ada, bob = store.collection("ada", "/ws"), store.collection("bob", "/ws")
    fill(ada)
    fill(bob, {"b.py": ["def bobs_own_helper(): pass"]})
    assert ada.contains("bobs_own_helper", 10) == []
    assert bob.contains("drop_outliers", 10) == []
    name = ada.name
    assert store.drop("ada", "/ws")
    lexical = store.lexical()
    assert lexical is not None and lexical.count(name) == 0
    assert len(bob.contains("bobs_own_helper", 10)) == 1


def test_a_lookup_shorter_than_a_trigram_is_refused_clearly(tmp_path: Path) -> None:
    lexical = Lexical(str(tmp_path / "l.sqlite"))
    with pytest.raises(ValueError, match="3 characters or more"):
        lexical.contains("c", "ab", 5)


def test_a_chroma_server_keeps_chromadbs_own_lookup() -> None:
    remote = ix.Store(HashEmbedder(), host="127.0.0.1", port=1)  # type: ignore[arg-type]
    assert remote.lexical() is None
