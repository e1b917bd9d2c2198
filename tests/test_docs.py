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


# --- the code the docs name exists --------------------------------------------------------------

MODULE_PATH = re.compile(r"(?<![\w/])odise_ext/[\w/.*-]*[\w*]")
DOTTED_MODULE = re.compile(r"`(odise_ext(?:\.\w+)+)")
CONFIG_KEY = re.compile(r"(?<![\w.])((?:MODEL|DATA|TEST|SOLVER|INPUT|DATASETS|DATALOADER)(?:\.[A-Z0-9_]+)+)\b")


def _module_exists(dotted):
    """``odise_ext.a.b`` names a package or module, or one attribute of a module (``odise_ext.a.b.C``)."""
    parts = dotted.split(".")
    base = os.path.join(ROOT, *parts)
    if os.path.isfile(base + ".py") or os.path.isdir(base):
        return True
    parent = os.path.join(ROOT, *parts[:-1])
    for source in (parent + ".py", os.path.join(parent, "__init__.py")):
        if len(parts) > 2 and os.path.isfile(source):
            with open(source, encoding="utf-8") as f:
                return re.search(rf"\b{parts[-1]}\b", f.read()) is not None
    return False


@pytest.mark.parametrize("page", PAGES)
def test_module_paths_and_dotted_modules_exist(page):
    text = _read(page)
    paths = [p for p in set(MODULE_PATH.findall(text)) if not glob.glob(os.path.join(ROOT, p.rstrip(".")))]
    modules = [m for m in set(DOTTED_MODULE.findall(text)) if not _module_exists(m)]
    assert not paths and not modules, f"{page} names code that does not exist: {sorted(paths + modules)}"


def test_module_patterns_find_the_names_in_a_sample():
    sample = "`odise_ext/zoo/catalog.py`, odise_ext/vpd/release/keys/*.tsv.gz, `odise_ext.zoo.hub`, (odise_ext/dense/)"
    assert sorted(MODULE_PATH.findall(sample)) == [
        "odise_ext/dense", "odise_ext/vpd/release/keys/*.tsv.gz", "odise_ext/zoo/catalog.py"
    ]
    assert DOTTED_MODULE.findall(sample) == ["odise_ext.zoo.hub"]
    assert _module_exists("odise_ext.zoo.hub") and _module_exists("odise_ext.zoo.catalog.ZOO")
    assert not _module_exists("odise_ext.web.odise_task") and not _module_exists("odise_ext.zoo.nothing.here")


def _config_keys():
    from detectron2.config import get_cfg

    from odise_ext.config import add_odise_config

    keys = set()

    def walk(node, prefix):
        for name, value in node.items():
            keys.add(prefix + name)
            if isinstance(value, dict):
                walk(value, prefix + name + ".")

    cfg = get_cfg()
    add_odise_config(cfg)
    walk(cfg, "")
    return keys


def test_config_keys_named_in_docs_and_configs_exist():
    from odise_ext.config.renamed import REMOVED, RENAMED

    keys = _config_keys()
    assert "MODEL.DEPTH_HEAD.NAME" in keys and "MODEL.VPD.DEPTH" not in keys  # the walk itself
    configs = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True))
    stale = []
    for rel in PAGES + [os.path.relpath(p, ROOT) for p in configs]:
        for key in set(CONFIG_KEY.findall(_read(rel))):
            if key not in keys:
                why = f" ({_explain_old(key, RENAMED, REMOVED)})" if key in RENAMED or key in REMOVED else ""
                stale.append(f"{rel}: {key}{why}")
    assert not stale, "docs name config keys that do not exist:\n" + "\n".join(sorted(stale))


def _explain_old(key, renamed, removed):
    return f"now {renamed[key]}" if key in renamed else "removed"


def test_model_zoo_page_cites_every_zoo_entry():
    """Issue 21: every zoo entry's URL and checksum source is cited in the model-zoo page."""
    from odise_ext.zoo.catalog import ZOO

    rows = {}
    for line in _read("docs/model-zoo.md").splitlines():
        m = re.match(r"\| `(\w+://\w+)` \|", line)
        if m:
            rows[m.group(1)] = line
    assert len(ZOO) >= 10 and sorted(rows) == sorted(e.uri for e in ZOO.values())
    for entry in ZOO.values():
        row = rows[entry.uri]
        repo = entry.source.split()[0]  # e.g. "NVlabs/ODISE", "wl-zhao/VPD"
        cited = [entry.file_name, f"`{entry.release_format}`", entry.config, *entry.urls]
        missing = [c for c in cited if c not in row]
        if repo not in row and "| same" not in row:
            missing.append(f"URL source {repo}")
        if entry.sha256 is None:
            if "none published" not in row:
                missing.append("checksum: none published")
        elif entry.sha256[:8] not in row or "file-name suffix" not in row:
            missing.append(f"checksum {entry.sha256} and its source")
        assert not missing, f"docs/model-zoo.md row of {entry.uri} lacks {missing}"


def _learning_table():
    """docs/benchmarks.md's learning-tests table: {run: [row cells]}."""
    text = _read("docs/benchmarks.md")
    section = text.split("## Learning tests", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 8 and cells[0] not in ("run", "---"):
            rows.setdefault(cells[0], []).append(cells)
    return rows


def test_documented_learning_figures_meet_the_learning_tests_thresholds():
    """The figures docs/benchmarks.md gives for each learning run satisfy the gains that run's test
    asserts (``tests/learning.py``'s ``LEARNING_RUNS``), with the same config, length and samples."""
    from learning import LEARNING_RUNS

    from odise_ext.config import setup_cfg

    rows = _learning_table()
    assert sorted(rows) == sorted(LEARNING_RUNS)
    for name, run in LEARNING_RUNS.items():
        iters = run.max_iter if run.max_iter is not None else setup_cfg(run.config).SOLVER.MAX_ITER
        documented = {cells[4]: cells for cells in rows[name]}
        assert sorted(documented) == sorted({g.metric for g in run.gains}), name
        for metric, (_, config, n_iter, n_eval, _, before, after, asserts) in documented.items():
            assert (config, int(n_iter), int(n_eval)) == (f"`{run.config}`", iters, run.eval_count), (name, metric)
            gains = [g for g in run.gains if g.metric == metric]
            assert asserts == "; ".join(str(g) for g in gains), (name, metric, asserts)
            failed = [str(g) for g in gains if not g.holds(float(before), float(after))]
            assert not failed, f"docs/benchmarks.md: {name} {metric} {before} -> {after} is not {failed}"


def test_gain_renders_and_checks_as_the_tests_wrote_it():
    from learning import Gain

    assert str(Gain("mIoU", ">", 2.5)) == "> 2.5 × untrained"
    assert str(Gain("oIoU", ">", 1.8, 1)) == "> 1.8 × untrained + 1"
    assert str(Gain("AP", ">", 1, 10)) == "> untrained + 10"
    assert Gain("mIoU", ">", 2.5).holds(2.0, 5.1) and not Gain("mIoU", ">", 2.5).holds(2.0, 5.0)
    assert Gain("abs_rel", "<", 0.5).holds(3.0, 1.4) and not Gain("abs_rel", "<", 0.5).holds(3.0, 1.5)
    assert Gain("AP", ">", 1, 10).holds(0.0, 10.5) and not Gain("AP", ">", 1, 10).holds(1.0, 10.5)
