"""The docs a newcomer reads: README length, links, and the config and tool paths they name.

Markdown files checked: README.md, ARCHITECTURE.md and docs/*.md. Config headers are checked too
(at most three comment lines, every docs page they point to exists, anchors included).
"""
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md", "ARCHITECTURE.md"] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))
)

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CONFIG = re.compile(r"(?<![\w/])configs/[\w./*<>-]+?\.yaml")
TOOL = re.compile(r"(?<![\w/])tools/[\w*<>-]+\.py")
DOC_REF = re.compile(r"(?:\.\./)?(docs/[\w-]+\.md|ARCHITECTURE\.md|README\.md)(#[\w-]+)?")


def _read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def _slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(rel):
    text = re.sub(r"```.*?```", "", _read(rel), flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"(?m)^#{1,6} (.+)$", text)}


def _links(rel):
    """Relative link targets of a page, as (path relative to the root or None, anchor or None)."""
    out = []
    for target in LINK.findall(_read(rel)):
        if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(rel), path)) if path else rel
        out.append((target, resolved, anchor or None))
    return out


def test_slug_matches_github_anchors():
    assert _slug("Weights (all offline)") == "weights-all-offline"
    assert _slug("VPD and Meta-Prompts smoke runs") == "vpd-and-meta-prompts-smoke-runs"
    assert _slug("`make demo`") == "make-demo"


def test_readme_is_at_most_250_lines():
    n = len(_read("README.md").splitlines())
    assert n <= 250, f"README.md has {n} lines; move details into docs/ (at most 250)"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {resolved for _, resolved, _ in _links("README.md")}
    pages = {p for p in PAGES if p.startswith("docs" + os.sep)}
    assert pages and pages <= linked, sorted(pages - linked)


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_resolve(page):
    links = _links(page)
    broken = [t for t, resolved, _ in links if not os.path.exists(os.path.join(ROOT, resolved))]
    assert not broken, f"{page}: links to missing files {broken}"
    bad_anchor = [
        t for t, resolved, anchor in links
        if anchor and resolved.endswith(".md") and anchor not in _anchors(resolved)
    ]
    assert not bad_anchor, f"{page}: links to missing headings {bad_anchor}"


def test_the_pages_have_links_to_check():
    # guards the link pattern itself: the README links to every docs page and ARCHITECTURE.md
    assert len(_links("README.md")) >= len(PAGES) - 1


def _exists(pattern):
    if "<" in pattern:  # a placeholder such as configs/testing/<config>.yaml: its folder must exist
        return os.path.isdir(os.path.join(ROOT, pattern.split("<")[0]))
    return bool(glob.glob(os.path.join(ROOT, pattern)))


@pytest.mark.parametrize("page", PAGES)
def test_config_and_tool_paths_exist(page):
    text = _read(page)
    configs = set(CONFIG.findall(text))
    tools = set(TOOL.findall(text))
    missing = sorted(p for p in configs | tools if not _exists(p))
    assert not missing, f"{page} names paths that do not exist: {missing}"


def test_path_patterns_find_the_paths_in_a_sample():
    sample = "configs/vpd/vpd_nyu_depth.yaml, `tools/convert_vpd_checkpoint.py`, tests/tools/test_x.py, configs/x.yml"
    assert CONFIG.findall(sample) == ["configs/vpd/vpd_nyu_depth.yaml"]
    assert TOOL.findall(sample) == ["tools/convert_vpd_checkpoint.py"]


CONFIGS = sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True)
)


@pytest.mark.parametrize("config", CONFIGS)
def test_config_header_is_short_and_points_to_existing_pages(config):
    lines = _read(config).splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    assert len(header) <= 3, f"{config}: {len(header)} header comment lines (at most 3; details go to docs/)"
    refs = DOC_REF.findall("\n".join(header))
    assert refs, f"{config}: the header names no docs page"
    for page, anchor in refs:
        assert os.path.exists(os.path.join(ROOT, page)), f"{config}: {page} does not exist"
        if anchor:
            assert anchor[1:] in _anchors(page), f"{config}: {page}{anchor} is not a heading"
