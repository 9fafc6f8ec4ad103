"""Three figures of a sample's results, drawn from its tables: how the records' virus scores are
spread, how they depend on record length, and the chunk scores along the records that matter.

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
from matplotlib.ticker import NullFormatter

from .atomic import atomic_path
from .table_columns import column_blocks
from .tables import tsv_reader

CALLS = ("others", "virus", "unscored")  # the codes of records.tsv's call, in this order
COLOURS = {"virus": "#d62728", "others": "#1f77b4"}  # the original VirNucPro figure's red, blue
COLOUR_MAPS = {"virus": "Reds", "others": "Blues"}
BINS = np.linspace(0, 1, 51)
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
_COLUMNS = ("length", "best_virus_score", "call", "regions", "chunks_scored", "chunks")


def plot_sample(
    sample,
    records_tsv,
    chunks_tsv,
    regions_tsv,
    threshold,
    distribution_svg,
    length_svg,
    tracks_svg,
    max_tracks=12,
):
    """Write the sample's three figures; return the record ids the tracks figure shows, in the
    order of its panels. `threshold`: the virus score above which a chunk is viral."""
    drawn, chosen = _read_records(records_tsv, max_tracks)
    with rc_context(STYLE):
        save_svg(_distribution(sample, drawn, threshold), distribution_svg)
        save_svg(_length(sample, drawn, threshold), length_svg)
        tracks = _tracks(
            sample,
            chosen,
            _spans_of(chunks_tsv, chosen),
            _regions_of(regions_tsv, chosen),
            threshold,
        )
        save_svg(tracks, tracks_svg)
    return [track.record_id for track in chosen]


class _Drawn:
    """What the score and length figures draw, summed a block of records at a time, so that
    memory does not grow with the sample: the records of each call, their histogram of scores
    and of length and score, and the records' points while few enough to draw each one."""

    def __init__(self):
        self.records = dict.fromkeys(CALLS, 0)
        self.scores = {call: np.zeros(len(BINS) - 1, dtype=np.int64) for call in COLOURS}
        shape = (len(LENGTH_EDGES) - 1, len(BINS) - 1)
        self.grid = {call: np.zeros(shape, dtype=np.int64) for call in COLOURS}
        self.blocks = []  # each block's (lengths, scores, calls); None once too many to draw

    def add(self, lengths, scores, calls):
        for code, call in enumerate(CALLS):
            self.records[call] += int(np.count_nonzero(calls == code))
        for call in COLOURS:
            drawn = calls == CALLS.index(call)
            self.scores[call] += np.histogram(scores[drawn], BINS)[0]
            inside = np.clip(lengths[drawn], LENGTH_EDGES[0], LENGTH_EDGES[-1])
            self.grid[call] += np.histogram2d(inside, scores[drawn], (LENGTH_EDGES, BINS))[
                0
            ].astype(np.int64)
        if self.blocks is not None:
            self.blocks.append((lengths, scores, calls))
            if self.scored() > BIN_ABOVE:
                self.blocks = None

    def scored(self):
        return self.records["virus"] + self.records["others"]

    def points(self):
        """Every record's length, score and call code, while few enough to draw each."""
        blocks = self.blocks or [(np.empty(0, np.int64), np.empty(0), np.empty(0, np.int8))]
        return tuple(map(np.concatenate, zip(*blocks, strict=True)))


def _read_records(path, max_tracks):
    """The _Drawn of the records, and the Tracks of the records to draw: those with regions
    (most regions first, then best score), then those with 2 or more scored chunks (best score
    first), ties in table order."""
    drawn, candidates = _Drawn(), []
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
        drawn.add(block["length"], block["score"], rows.codes("call", CALLS))
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
    with open(path, "rb") as handle:
        header = next(tsv_reader([handle.readline().decode()]))
        tracks = []
        for i in range(min(size, len(chosen["offset"]))):
            handle.seek(int(chosen["offset"][i]))
            row = next(tsv_reader([handle.readline().decode()]))
            fields = dict(zip(header, row, strict=True))
            tracks.append(
                Track(
                    fields["record_id"],
                    fields["length"],
                    fields["call"],
                    int(chosen["first_chunk"][i]),
                    int(chosen["chunks"][i]),
                    int(chosen["first_region"][i]),
                    int(chosen["regions"][i]),
                )
            )
    return tracks


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


def _distribution(sample, drawn, threshold):
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.add_subplot()
    counts = drawn.scores
    for call, colour in COLOURS.items():
        ax.stairs(
            counts[call],
            BINS,
            fill=True,
            facecolor=colour,
            edgecolor=colour,
            alpha=0.5,
            label=f"{call} (n = {counts[call].sum():,})",
        )
    ax.axvline(
        threshold, color="0.2", linestyle="--", linewidth=1, label=f"threshold {threshold:g}"
    )
    unscored = drawn.records["unscored"]
    ax.plot([], [], " ", label=f"unscored (n = {unscored:,}, not drawn)")
    ax.set(
        xlim=(0, 1),
        xlabel="best chunk virus score of the record",
        ylabel="records",
    )
    fig.suptitle(f"{sample}: virus scores of the records")
    drawn = np.concatenate(list(counts.values()))
    drawn = drawn[drawn > 0]
    if not drawn.size:
        ax.set(ylim=(0, 1), yticks=[])
        _note(ax, "no record has a score")
    elif drawn.max() > 100 * drawn.min():
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.7)  # a bin of one record still shows
    ax.legend(loc="upper left", bbox_to_anchor=(1, 1), frameon=False)
    return fig


def _length(sample, drawn, threshold):
    if drawn.scored() > BIN_ABOVE:
        return _length_binned(sample, drawn, threshold)
    lengths, scores, calls = drawn.points()
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for call, colour in COLOURS.items():
        shown = calls == CALLS.index(call)
        ax.scatter(
            lengths[shown],
            scores[shown],
            s=12,
            color=colour,
            alpha=0.8,
            linewidths=0,
            label=f"{call} (n = {np.count_nonzero(shown):,})",
        )
    ax.axhline(
        threshold, color="0.2", linestyle="--", linewidth=1, label=f"threshold {threshold:g}"
    )
    ax.set_xscale("log")
    ax.set(
        ylim=(-0.02, 1.02),
        xlabel="record length (bp)",
        ylabel="best chunk virus score",
    )
    fig.suptitle(f"{sample}: virus score against record length")
    if not drawn.scored():
        ax.set_xlim(1, 1e4)  # the log axis of no point has no range of its own
        _note(ax, "no record has a score")
    legend = ax.legend(loc="upper left", bbox_to_anchor=(1, 1), frameon=False, markerscale=2)
    for handle in legend.legend_handles:
        handle.set_alpha(1)  # the key's colours at full strength
    return fig


def _length_binned(sample, drawn, threshold):
    """The length figure of many scored records: for each call, the number of records in each
    bin of log length and score, on a log colour scale (one record to the fullest bin)."""
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    # the bins of lengths that hold records, a decade at least: reads of one length make a
    # bar in the middle of a readable axis
    held = np.flatnonzero(sum(grid.sum(axis=1) for grid in drawn.grid.values()))
    widen = max(LENGTH_BINS_PER_DECADE - (held[-1] + 1 - held[0]), 0)
    first = max(held[0] - (widen + 1) // 2, 0)
    end = min(held[-1] + 1 + (widen + 1) // 2, len(LENGTH_EDGES) - 1)
    for ax, (call, colour) in zip(axes, COLOURS.items(), strict=True):
        counts = drawn.grid[call][first:end]
        mesh = ax.pcolormesh(
            LENGTH_EDGES[first : end + 1],
            BINS,
            np.ma.masked_equal(counts.T, 0),  # an empty bin stays white
            cmap=COLOUR_MAPS[call],
            norm=LogNorm(vmin=1, vmax=max(counts.max(), 10)),
            rasterized=True,  # one image, not a path per bin
        )
        fig.colorbar(mesh, ax=ax, label="records per bin")
        ax.axhline(threshold, color="0.2", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # crowded on a range of one decade
        ax.set(ylim=(-0.02, 1.02), xlabel="record length (bp)")
        ax.set_title(f"{call} (n = {drawn.records[call]:,})", color=colour)
    axes[0].set_ylabel("best chunk virus score")
    fig.suptitle(f"{sample}: virus score against record length (dashed: threshold {threshold:g})")
    return fig


def _tracks(sample, chosen, spans, regions, threshold):
    if not chosen:
        fig = Figure(figsize=(7, 2.4), layout="constrained")
        ax = fig.add_subplot()
        ax.set(
            xticks=[], yticks=[], xlabel="position on the record (bp)", ylabel="chunk virus score"
        )
        _note(ax, "no record has 2 or more scored chunks\n(a sample of short reads has none)")
        fig.suptitle(f"{sample}: chunk virus scores along the records")
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
    fig.suptitle(f"{sample}: chunk virus scores along the records")
    fig.legend(
        handles=[
            Line2D([], [], color=COLOURS["virus"], linewidth=2.5, label="virus chunk"),
            Line2D([], [], color=COLOURS["others"], linewidth=2.5, label="other chunk"),
            Patch(color=COLOURS["virus"], alpha=0.12, label="virus region"),
            Line2D([], [], color="0.2", linestyle="--", label=f"threshold {threshold:g}"),
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
