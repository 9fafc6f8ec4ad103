"""Three figures of a sample's results, drawn from its tables: how the records' virus scores are
spread, how they depend on record length, and the chunk scores along the records that matter.

The figures are SVG, to go into a paper or a report as they are: text stays text, and the same
tables give the same bytes, so a rerun that changes nothing changes no figure. A sample may hold
millions of records, so the records table is read into typed arrays of the columns drawn, the
scatter of more than a few thousand points is drawn as one embedded image, and of the chunks only
those of the records drawn are kept.
"""

import heapq
import math
from array import array

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .atomic import atomic_path
from .tables import read_tsv

CALLS = ("others", "virus", "unscored")  # the codes of records.tsv's call, in this order
COLOURS = {"virus": "#d62728", "others": "#1f77b4"}  # the original VirNucPro figure's red, blue
BINS = np.linspace(0, 1, 51)
RASTERIZE_ABOVE = 5000  # scatter points; an SVG of a vector mark per point would be huge
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
    lengths, scores, calls, chosen = _read_records(records_tsv, max_tracks)
    ids = [record.record_id for record in chosen]
    with rc_context(STYLE):
        save_svg(_distribution(sample, scores, calls, threshold), distribution_svg)
        save_svg(_length(sample, lengths, scores, calls, threshold), length_svg)
        tracks = _tracks(
            sample, chosen, _spans_of(chunks_tsv, ids), _regions_of(regions_tsv, ids), threshold
        )
        save_svg(tracks, tracks_svg)
    return ids


def _read_records(path, max_tracks):
    """The records' lengths, best virus scores (NaN when unscored) and call codes, and the rows of
    the records to draw as tracks: those with regions (most regions first, then best score), then
    those with 2 or more scored chunks (best score first), ties in table order."""
    lengths, scores, calls = array("q"), array("d"), array("b")
    with_regions, scored = [], []  # min-heaps of the best max_tracks of each kind
    for number, record in enumerate(read_tsv(path)):
        score = math.nan if record.best_virus_score == "NA" else float(record.best_virus_score)
        lengths.append(int(record.length))
        scores.append(score)
        calls.append(CALLS.index(record.call))
        regions = int(record.regions)
        if regions:
            _keep_largest(with_regions, max_tracks, ((regions, score, -number), record))
        elif int(record.chunks_scored) >= 2:
            _keep_largest(scored, max_tracks, ((score, -number), record))
    chosen = sorted(with_regions, reverse=True) + sorted(scored, reverse=True)
    arrays = (np.array(a, dtype=a.typecode) for a in (lengths, scores, calls))
    return *arrays, [record for _, record in chosen[:max_tracks]]


def _keep_largest(heap, size, item):
    """Push `item` onto `heap`, dropping its smallest item once it holds `size`."""
    if len(heap) < size:
        heapq.heappush(heap, item)
    else:
        heapq.heappushpop(heap, item)


def _spans_of(chunks_tsv, record_ids):
    """The (start, end, virus score, is_virus) of each scored chunk of each of `record_ids`, from
    one pass over a table that may hold tens of millions of chunks."""
    spans = {record_id: [] for record_id in record_ids}
    for chunk in read_tsv(chunks_tsv):
        if chunk.record_id in spans and chunk.max_score2 != "NA":
            start, end = int(chunk.start), int(chunk.end)
            spans[chunk.record_id].append((start, end, float(chunk.max_score2), chunk.is_virus))
    return spans


def _regions_of(regions_tsv, record_ids):
    """The (start, end, region_id) of each region of each of `record_ids`."""
    regions = {record_id: [] for record_id in record_ids}
    for region in read_tsv(regions_tsv):
        if region.record_id in regions:
            regions[region.record_id].append((int(region.start), int(region.end), region.region_id))
    return regions


def _distribution(sample, scores, calls, threshold):
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.add_subplot()
    counts = {call: np.histogram(scores[calls == CALLS.index(call)], BINS)[0] for call in COLOURS}
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
    unscored = int((calls == CALLS.index("unscored")).sum())
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


def _length(sample, lengths, scores, calls, threshold):
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.add_subplot()
    many = np.count_nonzero(calls != CALLS.index("unscored")) > RASTERIZE_ABOVE
    for call, colour in COLOURS.items():
        drawn = calls == CALLS.index(call)
        ax.scatter(
            lengths[drawn],
            scores[drawn],
            s=3 if many else 12,
            color=colour,
            alpha=0.4 if many else 0.8,
            linewidths=0,
            rasterized=many,
            label=f"{call} (n = {np.count_nonzero(drawn):,})",
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
    if not np.any(calls != CALLS.index("unscored")):
        ax.set_xlim(1, 1e4)  # the log axis of no point has no range of its own
        _note(ax, "no record has a score")
    legend = ax.legend(loc="upper left", bbox_to_anchor=(1, 1), frameon=False, markerscale=2)
    for handle in legend.legend_handles:
        handle.set_alpha(1)  # the key's colours at full strength, however faint the points
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
