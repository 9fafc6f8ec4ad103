"""When a chunk and a record count as viral. By default the original's rule: a chunk is viral
when its best virus score is at least its best others score (over its frames), a record when
that holds over all its frames (records.tsv's best_virus_score and best_others_score). The
`calling` config keys tune it; the stored scores are read again and nothing is recomputed (the
rule is a param of the aggregation stage alone)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class CallRule:
    min_virus_score: float | None = None  # None: the original's rule
    min_virus_fraction: float = 0.0  # records of several scored chunks: viral chunks at least
    min_virus_bases: int = 0  # and their bases at least

    @property
    def region_threshold(self):
        """The mean chunk score a region reaches: a frame's virus score beats its others score
        above 0.5 (their softmax sums to 1), the original's rule for one frame."""
        return 0.5 if self.min_virus_score is None else self.min_virus_score

    @property
    def boundary(self):
        """The score() from which a chunk or record is viral."""
        return 0.0 if self.min_virus_score is None else self.min_virus_score

    @property
    def score_name(self):
        """What score() is, in the columns of records.tsv."""
        if self.min_virus_score is None:
            return "best_virus_score - best_others_score"
        return "best_virus_score"

    def score(self, best_others, best_virus):
        """What the rule compares with `boundary` (numbers or numpy arrays)."""
        if self.min_virus_score is None:
            # a difference of floats is >= 0 exactly when best_virus >= best_others: ties go
            # to virus, as in the original
            return best_virus - best_others
        return best_virus

    def chunk_is_virus(self, best_others, best_virus):
        return self.score(best_others, best_virus) >= self.boundary

    def record_call(self, best_others, best_virus, fraction_virus, virus_bases, chunks_scored):
        if not self.chunk_is_virus(best_others, best_virus):
            return "others"
        several = chunks_scored > 1  # one chunk (a read) is called by its score alone
        if several and (
            fraction_virus < self.min_virus_fraction or virus_bases < self.min_virus_bases
        ):
            return "others"
        return "virus"

    def describe(self):
        """The rule in the columns of records.tsv that it reads."""
        if self.min_virus_score is None:
            text = "virus when best_virus_score >= best_others_score (the original's rule)"
        else:
            text = f"virus when best_virus_score >= {self.min_virus_score:g}"
        several = []
        if self.min_virus_fraction:
            several.append(f"fraction_virus >= {self.min_virus_fraction:g}")
        if self.min_virus_bases:
            several.append(f"virus_bases >= {self.min_virus_bases}")
        if several:
            text += (
                "; a record of several scored chunks (chunks_scored > 1) also needs "
                + " and ".join(several)
            )
        return text + "; others otherwise"


ORIGINAL_RULE = CallRule()  # the original's, which its own tables always follow


def covered_bases(spans):
    """Bases covered by (start, end) spans, 1-based inclusive, sorted by start: overlapping
    chunks count their shared bases once."""
    total, reached = 0, 0
    for start, end in spans:
        if end > reached:
            total += end - max(start - 1, reached)
            reached = end
    return total
