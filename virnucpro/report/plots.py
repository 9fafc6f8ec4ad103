"""Three figures of a sample's results, drawn from its tables: how the records' scores are spread,
how they depend on record length, and the chunk scores along the records that matter. The first
two draw the score the call rule reads (calling.CallRule.score: under the original's rule the
best virus score less the best others score) and the boundary it calls virus from, so that each
record lies on the side of the line its call says.

The figures are SVG, to go into a paper or a report as they are: text stays text, and the same
tables give the same bytes, so a rerun that changes nothing changes no figure. A sample may hold
millions of records, so the records table is read a block at a time into arrays of the columns
drawn (table_columns.py), a sample of more than a few thousand scored records is drawn as 2-D
histograms of record counts rather than a point each, and of the chunks and regions only the
rows of the records drawn are read, found by counting rows.
"""

from collections import namedtuple

import numpy as np
from matplotlib import rc_context
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, NullFormatter

from ..io.atomic import atomic_path
from ..io.table_columns import column_blocks, rows_at
from ..io.tables import tsv_reader

CALLS = ("others", "virus", "unscored")  # the codes of records.tsv's call, in this order
# the groups of scored records drawn, in the original VirNucPro figure's red and blue, and apart
# those called others though their score is on the virus side: records of several scored chunks
# with too little of them viral (calling.min_virus_fraction, min_virus_bases)
COLOURS = {"virus": "#d62728", "others": "#1f77b4", "too-little": "#9467bd"}
COLOUR_MAPS = {"virus": "Reds", "others": "Blues", "too-little": "Purples"}
LABELS = {"virus": "virus", "others": "others", "too-little": "others, too little viral"}
BIN_WIDTH = 0.02  # of the score
# scored records above which the length figure counts records in bins: a point each would hide
# how many lie where, and an SVG of a mark per point would be huge
BIN_ABOVE = 5000
# the length bins, the same for every sample: 1 bp to 10 Gbp, evenly on a log scale
LENGTH_BINS_PER_DECADE = 20
LENGTH_EDGES = 10 ** (np.arange(10 * LENGTH_BINS_PER_DECADE + 1) / LENGTH_BINS_PER_DECADE)
STYLE = {
    "svg.hashsalt": "virnucpro",  # the SVG's ids from a fixed salt, not a random one
    "svg.fonttype": "none",  # text as text: smaller, searchable and editable
    "font.family": "sans-serif",
    "font.size": 9,
    "figure.titlesize": 10,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
# a record drawn as a track: its row's record_id, length and call, and its rows of chunks.tsv
# and regions.tsv, [first, first + count) of each table's rows
Track = namedtuple(
    "Track", ("record_id", "length", "call", "first_chunk", "chunks", "first_region", "regions")
)
_COLUMNS = (
    "length",
    "best_others_score",
    "best_virus_score",
    "call",
    "regions",
    "chunks_scored",
    "chunks",
)
# what the figures are titled by: the sample, and whether the embedding models' weights are
# random, which a figure's title then says
_Heading = namedtuple("_Heading", ("sample", "random_weights"))
RANDOM_WEIGHTS = "RANDOM weights (a demo or test checkpoint): the scores and calls mean nothing"


def plot_sample(
    sample,
    records_tsv,
    chunks_tsv,
    regions_tsv,
    rule,
    distribution_svg,
    length_svg,
    tracks_svg,
    max_tracks=12,
    random_weights=False,
):
    """Write the sample's three figures; return the record ids the tracks figure shows, in the
    order of its panels. `rule`: the calling.CallRule the calls were made by;
    `random_weights`: whether the embedding models' weights are random, which every figure's
    title then says."""
    drawn, chosen = _read_records(records_tsv, rule, max_tracks)
    heading = _Heading(sample, random_weights)
    with rc_context(STYLE):
        save_svg(_distribution(heading, drawn), distribution_svg)
        save_svg(_length(heading, drawn), length_svg)
        tracks = _tracks(
            heading,
            chosen,
            _spans_of(chunks_tsv, chosen),
            _regions_of(regions_tsv, chosen),
            rule.region_threshold,
        )
        save_svg(tracks, tracks_svg)
    return [track.record_id for track in chosen]


def _title(fig, heading, text):
    """The figure's title: the sample and `text`, and in red when the weights are random."""
    text = f"{heading.sample}: {text}"
    if heading.random_weights:
        fig.suptitle(f"{text}\n{RANDOM_WEIGHTS}", color="#b00000")
    else:
        fig.suptitle(text)


class _Drawn:
    """What the score and length figures draw, summed a block of records at a time, so that
    memory does not grow with the sample: the records of each call, the histogram of the call
    rule's scores of each group (COLOURS) and of their length and score, and the records'
    points while few enough to draw each one."""

    def __init__(self, rule):
        self.rule = rule
        self.edges = _score_edges(rule)
        # the records called others by their score alone where nothing else is asked
        self.groups = tuple(COLOURS)[: 3 if rule.min_virus_fraction or rule.min_virus_bases else 2]
        self.records = dict.fromkeys(CALLS, 0)
        self.scores = {group: np.zeros(len(self.edges) - 1, dtype=np.int64) for group in COLOURS}
        shape = (len(LENGTH_EDGES) - 1, len(self.edges) - 1)
        self.grid = {group: np.zeros(shape, dtype=np.int64) for group in COLOURS}
        self.blocks = []  # each block's (lengths, scores, groups); None once too many to draw

    def add(self, lengths, others, virus, calls):
        """A block of records: their lengths, best others and virus scores, and call codes."""
        for code, call in enumerate(CALLS):
            self.records[call] += int(np.count_nonzero(calls == code))
        scores = self.rule.score(others, virus)
        groups = np.select(
            [
                calls == CALLS.index("virus"),
                (calls == CALLS.index("others")) & ~(scores >= self.rule.boundary),
                calls == CALLS.index("others"),
            ],
            [0, 1, 2],
            -1,  # unscored
        )
        for code, group in enumerate(COLOURS):
            drawn = groups == code
            self.scores[group] += np.histogram(scores[drawn], self.edges)[0]
            inside = np.clip(lengths[drawn], LENGTH_EDGES[0], LENGTH_EDGES[-1])
            self.grid[group] += np.histogram2d(inside, scores[drawn], (LENGTH_EDGES, self.edges))[
                0
            ].astype(np.int64)
        if self.blocks is not None:
            self.blocks.append((lengths, scores, groups))
            if self.scored() > BIN_ABOVE:
                self.blocks = None

    def scored(self):
        return self.records["virus"] + self.records["others"]

    def points(self):
        """Every record's length, score and group code, while few enough to draw each."""
        blocks = self.blocks or [(np.empty(0, np.int64), np.empty(0), np.empty(0, np.int8))]
        return tuple(map(np.concatenate, zip(*blocks, strict=True)))


def _score_edges(rule):
    """The bins of the rule's score, one edge at its boundary, so that no bin holds records of
    both sides; the last bin holds its upper edge, so a boundary of 1 gets a bin above it."""
    low = -1.0 if rule.min_virus_score is None else 0.0
    grid = np.linspace(low, 1, round((1 - low) / BIN_WIDTH) + 1)
    top = [1 + BIN_WIDTH] if rule.boundary >= 1 else []
    return np.union1d(grid[~np.isclose(grid, rule.boundary)], [rule.boundary, *top])


def _read_records(path, rule, max_tracks):
    """The _Drawn of the records, and the Tracks of the records to draw: those with regions
    (most regions first, then best virus score), then those with 2 or more scored chunks (best
    virus score first), ties in table order."""
    drawn, candidates = _Drawn(rule), []
    number, chunks_before, regions_before = 0, 0, 0
    for rows in column_blocks(path, _COLUMNS):
        block = {
            name: rows.integers(name) for name in ("length", "regions", "chunks_scored", "chunks")
        }
        block["score"] = rows.floats("best_virus_score")
        block["number"] = number + np.arange(len(rows))
        block["offset"] = rows.offsets
        block["first_chunk"] = chunks_before + np.cumsum(block["chunks"]) - block["chunks"]
        block["first_region"] = regions_before + np.cumsum(block["regions"]) - block["regions"]
        candidates.append(_take(block, _ranked(block, max_tracks)))
        drawn.add(
            block["length"],
            rows.floats("best_others_score"),
            block["score"],
            rows.codes("call", CALLS),
        )
        number += len(rows)
        chunks_before += int(block["chunks"].sum())
        regions_before += int(block["regions"].sum())
    if not candidates:
        return drawn, []
    candidates = {name: np.concatenate([c[name] for c in candidates]) for name in candidates[0]}
    chosen = _take(candidates, _ranked(candidates, max_tracks))
    return drawn, _tracks_of(path, chosen, max_tracks)


def _ranked(block, size):
    """Indices of up to `size` records with regions, best first, then up to `size` records of 2
    or more scored chunks and no region, best first."""
    with_regions = np.flatnonzero(block["regions"] > 0)
    order = np.lexsort(
        (
            block["number"][with_regions],
            -block["score"][with_regions],
            -block["regions"][with_regions],
        )
    )
    several = np.flatnonzero((block["regions"] == 0) & (block["chunks_scored"] >= 2))
    following = np.lexsort((block["number"][several], -block["score"][several]))
    return np.concatenate([with_regions[order][:size], several[following][:size]])


def _take(block, indices):
    return {name: values[indices] for name, values in block.items()}


def _tracks_of(path, chosen, size):
    """The Tracks of the first `size` `chosen` records, their rows read at their offsets."""
    count = min(size, len(chosen["offset"]))
    return [
        Track(
            fields["record_id"],
            fields["length"],
            fields["call"],
            int(chosen["first_chunk"][i]),
            int(chosen["chunks"][i]),
            int(chosen["first_region"][i]),
            int(chosen["regions"][i]),
        )
        for i, fields in enumerate(rows_at(path, chosen["offset"][:count]))
    ]


def _rows_at(path, runs):
    """The rows (as {column: text}) of each run (first, count) of a table's rows (counted from 0
    after its header), from one pass that parses only those rows."""
    wanted = sorted((first, first + count, i) for i, (first, count) in enumerate(runs) if count)
    found = [[] for _ in runs]
    if not wanted:
        return found
    with open(path, "rb") as handle:
        header = next(tsv_reader([handle.readline().decode()]))
        row, rest = 0, b""
        while wanted and (data := handle.read(1 << 24)):
            data = rest + data
            cut = data.rfind(b"\n") + 1
            block, rest = data[:cut], data[cut:]
            rows = block.count(b"\n")
            if wanted[0][0] < row + rows:
                lines = block.decode().split("\n")
                while wanted and wanted[0][0] < row + rows:
                    first, end, i = wanted[0]
                    picked = lines[max(first - row, 0) : end - row]
                    found[i] += (dict(zip(header, r, strict=True)) for r in tsv_reader(picked))
                    if end > row + rows:
                        break
                    wanted.pop(0)
            row += rows
    return found


def _spans_of(chunks_tsv, chosen):
    """The (start, end, virus score, is_virus) of each scored chunk of each chosen record."""
    rows = _rows_at(chunks_tsv, [(track.first_chunk, track.chunks) for track in chosen])
    return {
        track.record_id: [
            (int(c["start"]), int(c["end"]), float(c["max_score2"]), c["is_virus"])
            for c in chunks
            if c["max_score2"] != "NA"
        ]
        for track, chunks in zip(chosen, rows, strict=True)
    }


def _regions_of(regions_tsv, chosen):
    """The (start, end, region_id) of each region of each chosen record."""
    rows = _rows_at(regions_tsv, [(track.first_region, track.regions) for track in chosen])
    return {
        track.record_id: [(int(r["start"]), int(r["end"]), r["region_id"]) for r in regions]
        for track, regions in zip(chosen, rows, strict=True)
    }


def _distribution(heading, drawn):
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.add_subplot()
    counts = {group: drawn.scores[group] for group in drawn.groups}
    for group, records in counts.items():
        ax.stairs(
            records,
            drawn.edges,
            fill=True,
            facecolor=COLOURS[group],
            edgecolor=COLOURS[group],
            alpha=0.5,
            label=f"{LABELS[group]} (n = {records.sum():,})",
            gid=f"records-{group}",
        )
    _rule_line(ax.axvline, drawn.rule)
    unscored = drawn.records["unscored"]
    ax.plot([], [], " ", label=f"unscored (n = {unscored:,}, not drawn)")
    ax.set(
        xlim=(drawn.edges[0], drawn.edges[-1]),
        xlabel=f"{drawn.rule.score_name} of the record",
        ylabel="records",
    )
    _title(fig, heading, "the call rule's scores of the records")
    held = np.concatenate(list(counts.values()))
    held = held[held > 0]
    if not held.size:
        ax.set(ylim=(0, 1), yticks=[])
        _note(ax, "no record has a score")
    elif held.max() > 100 * held.min():
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.7)  # a bin of one record still shows
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # whole records
    ax.legend(loc="upper left", bbox_to_anchor=(1, 1), frameon=False)
    return fig


def _rule_line(draw, rule):
    """The line at the rule's boundary, drawn by `draw` (an Axes' axvline or axhline)."""
    draw(
        rule.boundary,
        color="0.2",
        linestyle="--",
        linewidth=1,
        label=f"call rule: virus from {rule.boundary:g}",
        gid="call-rule",
    )


def _length(heading, drawn):
    if drawn.scored() > BIN_ABOVE:
        return _length_binned(heading, drawn)
    lengths, scores, groups = drawn.points()
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for code, group in enumerate(drawn.groups):
        shown = groups == code
        ax.scatter(
            lengths[shown],
            scores[shown],
            s=12,
            color=COLOURS[group],
            alpha=0.8,
            linewidths=0,
            label=f"{LABELS[group]} (n = {np.count_nonzero(shown):,})",
            gid=f"records-{group}",
        )
    _rule_line(ax.axhline, drawn.rule)
    ax.set_xscale("log")
    ax.set(
        ylim=_score_limits(drawn),
        xlabel="record length (bp)",
        ylabel=drawn.rule.score_name,
    )
    _title(fig, heading, "the call rule's score against record length")
    if not drawn.scored():
        ax.set_xlim(1, 1e4)  # the log axis of no point has no range of its own
        _note(ax, "no record has a score")
    legend = ax.legend(loc="upper left", bbox_to_anchor=(1, 1), frameon=False, markerscale=2)
    for handle in legend.legend_handles:
        handle.set_alpha(1)  # the key's colours at full strength
    return fig


def _score_limits(drawn):
    return drawn.edges[0] - BIN_WIDTH, drawn.edges[-1] + BIN_WIDTH


def _length_binned(heading, drawn):
    """The length figure of many scored records: for each group, the number of records in each
    bin of log length and score, on a log colour scale (one record to the fullest bin)."""
    fig = Figure(figsize=(3.5 * len(drawn.groups), 3.6), layout="constrained")
    axes = fig.subplots(1, len(drawn.groups), sharey=True)
    # the bins of lengths that hold records, a decade at least: reads of one length make a
    # bar in the middle of a readable axis
    held = np.flatnonzero(sum(grid.sum(axis=1) for grid in drawn.grid.values()))
    widen = max(LENGTH_BINS_PER_DECADE - (held[-1] + 1 - held[0]), 0)
    first = max(held[0] - (widen + 1) // 2, 0)
    end = min(held[-1] + 1 + (widen + 1) // 2, len(LENGTH_EDGES) - 1)
    for ax, group in zip(axes, drawn.groups, strict=True):
        counts = drawn.grid[group][first:end]
        mesh = ax.pcolormesh(
            LENGTH_EDGES[first : end + 1],
            drawn.edges,
            np.ma.masked_equal(counts.T, 0),  # an empty bin stays white
            cmap=COLOUR_MAPS[group],
            norm=LogNorm(vmin=1, vmax=max(counts.max(), 10)),
            rasterized=True,  # one image, not a path per bin
        )
        fig.colorbar(mesh, ax=ax, label="records per bin")
        _rule_line(ax.axhline, drawn.rule)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # crowded on a range of one decade
        ax.set(ylim=_score_limits(drawn), xlabel="record length (bp)")
        ax.set_title(f"{LABELS[group]} (n = {drawn.grid[group].sum():,})", color=COLOURS[group])
    axes[0].set_ylabel(drawn.rule.score_name)
    _title(
        fig,
        heading,
        f"the call rule's score against record length (dashed: virus from {drawn.rule.boundary:g})",
    )
    return fig


def _tracks(heading, chosen, spans, regions, threshold):
    """`threshold`: the mean chunk virus score a region reaches."""
    if not chosen:
        fig = Figure(figsize=(7, 2.4), layout="constrained")
        ax = fig.add_subplot()
        ax.set(
            xticks=[], yticks=[], xlabel="position on the record (bp)", ylabel="chunk virus score"
        )
        _note(ax, "no record has 2 or more scored chunks\n(a sample of short reads has none)")
        _title(fig, heading, "chunk virus scores along the records")
        return fig
    fig = Figure(figsize=(7, 0.9 + 1.4 * len(chosen)), layout="constrained")
    for ax, record in zip(fig.subplots(len(chosen), 1, squeeze=False)[:, 0], chosen, strict=True):
        # bases as half-open intervals: base k covers [k - 1, k), so chunk after chunk touch
        for k, (start, end, region_id) in enumerate(regions[record.record_id]):
            ax.axvspan(start - 1, end, color=COLOURS["virus"], alpha=0.12, linewidth=0)
            ax.text(
                (start - 1 + end) / 2,
                1.04 + 0.11 * (k % 2),  # two rows above the scores: neighbours' labels clear
                region_id.removeprefix(f"{record.record_id}|"),  # the title names the record
                ha="center",
                va="bottom",
                fontsize=7,
            )
        if spans[record.record_id]:
            starts, ends, scores, viral = zip(*spans[record.record_id], strict=True)
            colours = [COLOURS["virus" if v == "True" else "others"] for v in viral]
            ax.hlines(scores, np.subtract(starts, 1), ends, colors=colours, linewidth=2.5)
        ax.axhline(threshold, color="0.2", linestyle="--", linewidth=1)
        ax.set(
            xlim=(0, int(record.length)),
            ylim=(0, 1.27),
            yticks=[0, 0.5, 1],
        )
        ax.spines.left.set_bounds(0, 1)  # the headroom above holds the region labels
        ax.set_title(f"{record.record_id}  ({int(record.length):,} bp, {record.call})", loc="left")
    ax.set_xlabel("position on the record (bp)")
    fig.supylabel("chunk virus score", fontsize=9)
    _title(fig, heading, "chunk virus scores along the records")
    fig.legend(
        handles=[
            Line2D([], [], color=COLOURS["virus"], linewidth=2.5, label="virus chunk"),
            Line2D([], [], color=COLOURS["others"], linewidth=2.5, label="other chunk"),
            Patch(color=COLOURS["virus"], alpha=0.12, label="virus region"),
            Line2D([], [], color="0.2", linestyle="--", label=f"region threshold {threshold:g}"),
        ],
        loc="outside lower center",
        ncols=4,
        frameon=False,
    )
    return fig


def _note(ax, text):
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        color="0.3",
        bbox={"facecolor": "white", "edgecolor": "none"},  # clear of the threshold line
    )


def save_svg(fig, path):
    """Write `fig` to `path` as SVG; call it inside rc_context(STYLE), whose hash salt makes the
    same figure the same bytes."""
    with atomic_path(path) as tmp:
        # no date in the file, so that the same tables give the same bytes
        fig.savefig(tmp, format="svg", dpi=300, metadata={"Date": None})
