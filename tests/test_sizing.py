import gzip

from virnucpro.sizing import TOKENS_PER_SHARD, default_shards, estimated_bases


def test_sizes_are_estimated_for_plain_and_gzip_files(tmp_path):
    text = (">r\n" + "ACGT" * 25_000 + "\n") * 40
    plain = tmp_path / "reads.fa"
    plain.write_text(text)
    zipped = tmp_path / "reads.fa.gz"
    zipped.write_bytes(gzip.compress(text.encode()))
    assert estimated_bases(plain) == len(text)
    assert estimated_bases(zipped) == len(text)  # from the gzip trailer


def test_shards_follow_size_and_fill_every_gpu(tmp_path):
    small = tmp_path / "small.fa"
    small.write_text(">r\nACGT\n")
    big = tmp_path / "big.fa"
    with open(big, "wb") as handle:  # about 2.5 shards of work in 500 bp chunks, sparse
        handle.write(b">r\n")
        handle.seek(int(2.5 * TOKENS_PER_SHARD / 168 * 500))
        handle.write(b"\n")
    assert default_shards([(small, 500)], gpus=0) == 1
    assert default_shards([(small, 500)], gpus=4) == 4  # one shard per GPU at least
    assert default_shards([(big, 500), (small, 300)], gpus=0) == 3
    assert default_shards([(big, 500)], gpus=2) == 4  # rounded up to whole rounds of GPUs
    assert default_shards([], gpus=0) == 1
