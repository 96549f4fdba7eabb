"""The operator docs stay true to the code: the element reference is written from the classes, every
field a trained bank carries is documented, every topic has its section, every link resolves."""

from __future__ import annotations

import json
import re

import pytest
from pipeline_support import LINE, REPO, prepare_trained_line

from patchline.pipeline.element_docs import element_reference

DOCS = REPO / "docs"
MAPS = {"normal_scores", "synthetic_auroc", "image"}  # keyed by aggregation: documented by their own name


def test_the_element_reference_is_what_the_code_says():
    written = (DOCS / "pipeline-elements.md").read_text()
    assert written == element_reference(), \
        "docs/pipeline-elements.md is stale: python -m patchline.pipeline.element_docs > docs/pipeline-elements.md"


def _paths(record: dict, prefix: str = ""):
    for key, value in record.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and key not in MAPS:
            yield from _paths(value, path + ".")
        else:
            yield path


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    return prepare_trained_line(tmp_path_factory.getbasetemp() / "pipeline-line")


def test_every_field_of_a_trained_bank_is_documented(line):
    bank_dir = line.workdir / "faiss-index-precision" / LINE
    record = json.loads((bank_dir / (bank_dir / "CURRENT").read_text().strip() / "bank.json").read_text())
    lines = (DOCS / "bank-json.md").read_text().splitlines()
    missing = []
    for path in _paths(record):
        parent, _, leaf = path.rpartition(".")
        documented = any(f"`{path}`" in text or f"`{path}." in text or
                         (parent and f"`{parent}." in text and re.search(rf"\b{leaf}\b", text)) for text in lines)
        if not documented:
            missing.append(path)
    assert not missing, f"bank.json fields missing from docs/bank-json.md: {missing}"


def test_every_topic_has_its_section_and_every_readme_link_resolves():
    from patchline.mqtt import topics

    mqtt_doc = (DOCS / "mqtt.md").read_text()
    for topic in re.findall(r"patchline/<line>/\S+", topics.__doc__):
        assert f"`{topic}`" in mqtt_doc, topic
    for doc in ["README.md", *(f"docs/{p.name}" for p in DOCS.glob("*.md"))]:
        text = (REPO / doc).read_text()
        for target in re.findall(r"\]\(([^)#]+)\)", text):
            if not target.startswith("http"):
                assert ((REPO / doc).parent / target).exists(), f"{doc} links to {target}, which does not exist"


def test_the_security_page_states_the_bounds_the_code_applies():
    from patchline.core.image_file import MAX_IMAGE_BYTES, MAX_PIXELS
    from patchline.dashboard import state
    from patchline.mqtt.payload import MAX_DEPTH, MAX_PAYLOAD_BYTES

    text = (DOCS / "security.md").read_text()
    assert f"{MAX_PAYLOAD_BYTES // 1024} KiB" in text and f"deeper than {MAX_DEPTH} levels" in text
    assert f"at most {MAX_IMAGE_BYTES // 1024 // 1024} MB" in text and f"{MAX_PIXELS // 1_000_000} megapixels" in text
    assert f"at most {state.MAX_CAMERAS} cameras" in text and f"{state.KEPT_SNAPSHOTS} snapshots" in text
