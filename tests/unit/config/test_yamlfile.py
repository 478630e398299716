"""Reading one YAML file with its failures as the caller's error (bridge.config.yamlfile)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bridge.config.yamlfile import StrictLoader, read_yaml


class FileProblem(Exception):
    """Stands in for WatchesError / ArgumentSpecError: an error naming the file."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def test_a_document_is_read_safely(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("- {a: 1}\n- b\n")
    assert read_yaml(path, FileProblem) == [{"a": 1}, "b"]


def test_an_empty_file_is_none(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("# nothing\n")
    assert read_yaml(path, FileProblem) is None


def test_invalid_yaml_names_the_file_line_and_column_and_chains_the_cause(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("a: 1\nb: [\n")
    with pytest.raises(FileProblem, match=r"a\.yaml: YAML error at line 3, column 1: ") as info:
        read_yaml(path, FileProblem)
    assert info.value.path == str(path)
    assert isinstance(info.value.__cause__, yaml.YAMLError)


def test_a_missing_file_is_the_callers_error(tmp_path: Path) -> None:
    with pytest.raises(FileProblem, match="cannot read the file: No such file or directory"):
        read_yaml(tmp_path / "none.yaml", FileProblem)


def test_a_file_that_is_not_utf8_is_the_callers_error(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_bytes(b"a: \xff\n")
    with pytest.raises(FileProblem, match="cannot read the file: not UTF-8 text"):
        read_yaml(path, FileProblem)


def test_unsafe_tags_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("a: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(FileProblem, match="YAML error at line 1"):
        read_yaml(path, FileProblem)


def test_the_strict_loader_refuses_a_repeated_key_naming_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("a: 1\nb: 2\na: 3\n")
    assert read_yaml(path, FileProblem) == {"a": 3, "b": 2}  # plain YAML keeps the last
    with pytest.raises(
        FileProblem,
        match=r"YAML error at line 3, column 1: duplicate key 'a' \(first set at line 1\)",
    ):
        read_yaml(path, FileProblem, loader=StrictLoader)


def test_the_strict_loader_allows_merge_keys(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("base: &b {x: 1}\nuse:\n  <<: *b\n  y: 2\n")
    assert read_yaml(path, FileProblem, loader=StrictLoader)["use"] == {"x": 1, "y": 2}
