"""What the score figures (virnucpro.report.plots) draw, read back from their SVG: the texts, the
records' points and bars of each group, and the dashed line of the call rule; and a check that
every record of a records table lies on the side of that line its call says."""

import math
import re
import xml.etree.ElementTree as ET

from virnucpro.io.tables import read_tsv

SVG = "{http://www.w3.org/2000/svg}"


def svg_texts(path):
    """The texts of a well-formed SVG file, in document order."""
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    return ["".join(element.itertext()) for element in root.iter() if element.tag.endswith("text")]


def _group(root, gid):
    return root.find(f".//{SVG}g[@id='{gid}']")


def _vertices(path_element):
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", path_element.get("d"))]
    return list(zip(numbers[::2], numbers[1::2], strict=True))


def rule_line(root):
    """The dashed line of the call rule: its two ends (x, y)."""
    return _vertices(_group(root, "call-rule").find(f"{SVG}path"))


def points(root, group):
    """The (x, y) of each point of a group of records (none where the figure has no such
    group)."""
    found = _group(root, f"records-{group}")
    return (
        []
        if found is None
        else [(float(u.get("x")), float(u.get("y"))) for u in found.iter(f"{SVG}use")]
    )


def bars(root, group):
    """The vertices (x, y) of a group's histogram outline."""
    found = _group(root, f"records-{group}")
    return [] if found is None else _vertices(found.find(f"{SVG}path"))


def expected_groups(records_tsv, rule):
    """{group: [the rule's score of each of its records]} of a records table: the records
    called virus, those called others below the rule's boundary, and those called others
    above it (too little of them viral)."""
    groups = {"virus": [], "others": [], "too-little": []}
    for row in read_tsv(records_tsv):
        if row.call == "unscored":
            continue
        score = rule.score(float(row.best_others_score), float(row.best_virus_score))
        if row.call == "virus":
            groups["virus"].append(score)
        else:
            groups["others" if score < rule.boundary else "too-little"].append(score)
    return groups


def check_figures_follow_the_calls(distribution_svg, length_svg, records_tsv, rule):
    """Assert that the score distribution and length figures draw every scored record of
    `records_tsv` on the side of the call rule's line its call says: a point each (its height
    from the line proportional to its score's distance from the boundary) and the bars of each
    group, with its count in the legend, on an axis of whole records."""
    groups = expected_groups(records_tsv, rule)
    length = ET.parse(length_svg).getroot()
    [(_, line_y), (_, other_y)] = rule_line(length)
    assert line_y == other_y  # across the figure, at the boundary's height
    scales = []
    for group, scores in groups.items():
        drawn = sorted(y for _, y in points(length, group))
        assert len(drawn) == len(scores), group
        # higher scores are drawn higher, that is at a smaller y
        for y, score in zip(drawn, sorted(scores, reverse=True), strict=True):
            assert y <= line_y if group != "others" else y >= line_y, (group, score)
            if abs(score - rule.boundary) > 1e-3:
                scales.append((y - line_y) / (score - rule.boundary))
    assert all(math.isclose(scale, scales[0], rel_tol=0.01) for scale in scales)

    distribution = ET.parse(distribution_svg).getroot()
    [(line_x, _), (other_x, _)] = rule_line(distribution)
    assert line_x == other_x
    texts = svg_texts(distribution_svg)
    labels = {"virus": "virus", "others": "others", "too-little": "others, too little viral"}
    for group, scores in groups.items():
        outline = bars(distribution, group)
        if not outline:
            assert not scores, group
            continue
        assert f"{labels[group]} (n = {len(scores)})" in texts
        bottom = max(y for _, y in outline)
        for x, y in outline:
            if y < bottom:  # the edges of a bin that holds records
                assert x >= line_x if group != "others" else x <= line_x, group
    ticks = [
        "".join(tick.itertext()).strip()
        for tick in distribution.iter(f"{SVG}g")
        if tick.get("id", "").startswith("ytick_")
    ]
    assert ticks and all(tick.isdigit() for tick in ticks), ticks
