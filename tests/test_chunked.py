"""fit_chunks: exact full-batch semantics over chunks, equal to gdcore.fit on the whole."""

import numpy as np
import pytest

import gdcore

from conftest import problem


@pytest.fixture(scope="module")
def whole():
    X, y, _ = problem(n=1000, d=5)
    w = np.random.default_rng(2).uniform(0.0, 2.0, 1000)
    w[:150] = 0.0  # the first chunk has no weight at all
    return X, y, w


def pieces(X, y, w=None, size=150):
    return [(X[i:i + size], y[i:i + size]) + (() if w is None else (w[i:i + size],))
            for i in range(0, len(y), size)]


@pytest.mark.parametrize("optimizer", ["gd", "nesterov", "adagrad", "rmsprop", "adam",
                                       "normalized"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("precompute", [False, True])
def test_equals_in_memory_fit(whole, optimizer, weighted, precompute):
    X, y, w = whole
    options = dict(optimizer=optimizer, lr=0.05, epochs=25, tol=None, l2=0.01,
                   schedule="cosine")
    chunked = gdcore.fit_chunks(pieces(X, y, w if weighted else None), precompute=precompute,
                                **options)
    memory = gdcore.fit(X, y, sample_weight=w if weighted else None, precompute=False,
                        **options)
    np.testing.assert_allclose(chunked.loss_history, memory.loss_history, rtol=1e-10)
    np.testing.assert_allclose(chunked.coef, memory.coef, rtol=1e-10, atol=1e-14)
    assert chunked.intercept == pytest.approx(memory.intercept, rel=1e-10, abs=1e-14)
    assert chunked.n_updates == memory.n_updates


def test_stopping_callable_source_and_continuation(whole):
    X, y, _ = whole
    reads = []

    def source():
        reads.append(1)
        return iter(pieces(X, y))
    a = gdcore.fit_chunks(source, optimizer="gd", lr=0.5, epochs=500, gtol=1e-8, tol=None)
    b = gdcore.fit(X, y, optimizer="gd", lr=0.5, epochs=500, gtol=1e-8, tol=None,
                   precompute=False)
    assert a.stop_reason == b.stop_reason == "gtol" and a.n_epochs == b.n_epochs
    assert len(reads) == a.n_epochs  # one read an epoch: the first also validates
    five = gdcore.fit_chunks(pieces(X, y), optimizer="adam", lr=0.05, epochs=5, tol=None)
    more = gdcore.fit_chunks(pieces(X, y), epochs=5, tol=None, init=five)
    ten = gdcore.fit_chunks(pieces(X, y), optimizer="adam", lr=0.05, epochs=10, tol=None)
    np.testing.assert_array_equal(more.coef, ten.coef)
    np.testing.assert_array_equal(more.loss_history, ten.loss_history)


class CountingSource:
    """A callable source of chunks that counts the passes and the chunks read."""

    def __init__(self, chunks):
        self.chunks, self.passes, self.chunks_read = chunks, 0, 0

    def __call__(self):
        self.passes += 1
        for chunk in self.chunks:
            self.chunks_read += 1
            yield chunk


@pytest.mark.parametrize("precompute", [False, True])
@pytest.mark.parametrize("scale", [1.0, 1e300])
def test_no_pass_reads_the_data_for_its_checks_alone(whole, precompute, scale):
    """The first pass validates the chunks and forms the Gram matrix (precompute=True) or the
    first epoch's sums: E streamed epochs read the data E times, a Gram fit once.  Weights
    beyond 2^±64 are known to need scaling only once all are read: one more pass then."""
    X, y, w = whole
    source = CountingSource(pieces(X, y, w * scale))
    options = dict(optimizer="adam", lr=0.05, epochs=7, tol=None)
    got = gdcore.fit_chunks(source, precompute=precompute, **options)
    expected = gdcore.fit(X, y, sample_weight=w * scale, precompute=False, **options)
    np.testing.assert_allclose(got.loss_history, expected.loss_history, rtol=1e-10)
    np.testing.assert_allclose(got.coef, expected.coef, rtol=1e-10, atol=1e-14)
    extra = 0 if scale == 1.0 else 1
    assert source.passes == (1 if precompute else options["epochs"]) + extra


def test_precompute_auto_forms_the_gram_matrix_unless_it_overflows(whole):
    """"auto": one pass from two epochs on (the source is read again every epoch, files
    parsed again); where the matrix overflows float64 it streams instead of refusing."""
    X, y, w = whole
    options = dict(optimizer="adam", lr=0.05, epochs=7, tol=None)
    for epochs, passes in [(7, 1), (1, 1)]:
        source = CountingSource(pieces(X, y, w))
        got = gdcore.fit_chunks(source, precompute="auto", **dict(options, epochs=epochs))
        assert source.passes == passes
        expected = gdcore.fit(X, y, sample_weight=w, precompute=False, **dict(options,
                                                                             epochs=epochs))
        np.testing.assert_allclose(got.coef, expected.coef, rtol=1e-10, atol=1e-14)
    huge = X * 1e160        # its squares overflow the Gram matrix, not a streamed pass
    source = CountingSource(pieces(huge, y))
    got = gdcore.fit_chunks(source, precompute="auto", optimizer="adam", lr=0.05, epochs=3,
                            tol=None)
    expected = gdcore.fit(huge, y, precompute=False, optimizer="adam", lr=0.05, epochs=3,
                          tol=None)
    np.testing.assert_allclose(got.loss_history, expected.loss_history, rtol=1e-10)
    assert source.passes == 1 + 3       # the Gram matrix's pass, then three streamed epochs
    with pytest.raises(ValueError, match="precompute=True.*overflows"):
        gdcore.fit_chunks(pieces(huge, y), precompute=True, epochs=3)


def test_precompute_holds_one_gram_matrix_and_its_scratch():
    """precompute=True's memory check (and the README) count two (d + 2)² float64 matrices,
    what gdcore.fit's Gram mode holds: fit_chunks formed each chunk's matrix apart and merged
    it into a copy of the running one (merge_grams, with a scratch of its own), holding
    four at once.  Each chunk's rows are now merged into one matrix in place."""
    import tracemalloc
    d = 1000
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((3000, d)), rng.standard_normal(3000)
    matrix = 8 * (d + 2) ** 2
    tracemalloc.start()
    try:
        chunked = gdcore.fit_chunks(pieces(X, y, size=1000), precompute=True, epochs=2,
                                    lr=1e-3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # two matrices, the 8 MB block of rows in float64 and a little more (the old code: ~6)
    assert peak < 2 * matrix + (8 << 20) + (3 << 20), peak / matrix
    whole = gdcore.fit(X, y, precompute=True, epochs=2, lr=1e-3)
    np.testing.assert_allclose(chunked.loss_history, whole.loss_history, rtol=1e-10)
    np.testing.assert_allclose(chunked.coef, whole.coef, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("precompute", [False, True])
def test_a_bad_last_chunk_stops_the_fit_before_any_update(whole, precompute):
    X, y, _ = whole
    bad = pieces(X, y)
    bad[-1] = (bad[-1][0], bad[-1][1].copy())
    bad[-1][1][-1] = np.inf
    start = gdcore.fit_chunks(pieces(X, y), optimizer="adam", lr=0.05, epochs=2, tol=None)
    before = (start.coef.copy(), start.intercept, list(start.loss_history))
    with pytest.raises(ValueError, match=r"chunk 6 \(from row 900 of the whole data\): y "
                                         r"contains NaN or infinity \(first at index \[999\]"):
        gdcore.fit_chunks(bad, epochs=3, precompute=precompute, init=start,
                          callback=lambda info: pytest.fail("an epoch ran"))
    np.testing.assert_array_equal(start.coef, before[0])
    assert (start.intercept, list(start.loss_history)) == before[1:]


def test_bad_settings_are_refused_before_reading_or_after_the_first_chunk(whole):
    """Settings are checked before any chunk is read (a source's first chunk may be slow to
    come), and init against the first chunk's width, not after a whole pass."""
    X, y, _ = whole
    for bad in (dict(lr=-1.0), dict(optimizer="adamw"), dict(optimizer="adam", l1=0.1),
                dict(schedule="cosin"), dict(epochs=0)):
        source = CountingSource(pieces(X, y))
        with pytest.raises(ValueError):
            gdcore.fit_chunks(source, **dict(dict(epochs=3), **bad))
        assert source.chunks_read == 0, bad
    source = CountingSource(pieces(X, y))
    with pytest.raises(ValueError, match="init"):
        gdcore.fit_chunks(source, epochs=3, init=np.zeros(2))
    assert source.chunks_read == 1


def test_memmapped_chunks(whole, tmp_path):
    X, y, _ = whole
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    chunked = gdcore.fit_chunks([(mapped[i:i + 200], y[i:i + 200]) for i in range(0, 1000, 200)],
                                optimizer="adam", lr=0.05, epochs=10, tol=None)
    memory = gdcore.fit(mapped, y, optimizer="adam", lr=0.05, epochs=10, tol=None,
                        precompute=False)
    np.testing.assert_allclose(chunked.coef, memory.coef, rtol=1e-10)


def test_chunk_errors_name_the_chunk(whole):
    X, y, _ = whole
    bad = pieces(X, y)
    bad[2] = (bad[2][0].copy(), bad[2][1])
    bad[2][0][3, 1] = np.nan
    with pytest.raises(ValueError, match=r"chunk 2 \(from row 300 of the whole data\): X "
                                         r"contains NaN or infinity \(first at index \[303, 1\]"):
        gdcore.fit_chunks(bad, epochs=2, callback=lambda info: pytest.fail("an epoch ran"))
    with pytest.raises(ValueError, match="chunk 1: X has 4 features but chunk 0 has 5"):
        gdcore.fit_chunks([(X[:10], y[:10]), (X[10:20, :4], y[10:20])], epochs=2)
    with pytest.raises(TypeError, match="one-shot iterator"):
        gdcore.fit_chunks(iter(pieces(X, y)), epochs=2)
    with pytest.raises(ValueError, match="no data"):
        gdcore.fit_chunks([], epochs=2)
    with pytest.raises(ValueError, match="sums to 0 over all chunks"):
        gdcore.fit_chunks([(X[:10], y[:10], np.zeros(10))], epochs=2)
    with pytest.raises(gdcore.DivergenceError):
        gdcore.fit_chunks(pieces(X, y), optimizer="gd", lr=1e6, epochs=50, tol=None)


def test_chunks_of_another_dtype_are_refused(whole):
    """float64 after float32 is not cast down (silently losing precision, or overflowing to
    inf from finite values): the error names the chunk and both dtypes."""
    X, y, _ = whole
    first = (X[:10].astype(np.float32), y[:10].astype(np.float32))
    later = X[10:20].copy()
    later[5, 0] = 1e39      # finite in float64, inf in float32
    for second in [(later, y[10:20]), (X[10:20], y[10:20])]:
        with pytest.raises(TypeError, match="chunk 1: X is float64 but chunk 0's is float32"):
            gdcore.fit_chunks([first, second], epochs=2)
    # integers count as float64, as in gdcore.fit
    ints = gdcore.fit_chunks([(X[:10], y[:10]), (np.ones((10, X.shape[1]), int), y[10:20])],
                             epochs=2, tol=None)
    assert ints.coef.dtype == np.float64


def test_a_source_whose_iter_returns_one_iterator_is_refused(whole):
    """iter() giving the same iterator each time reads the chunks once: the first pass used to
    take chunk 0 to learn d, so the fit silently left it out."""
    X, y, _ = whole

    class OneShot:
        def __init__(self, chunks):
            self.chunks = iter(chunks)

        def __iter__(self):
            return self.chunks

    with pytest.raises(TypeError, match="returns the same iterator"):
        gdcore.fit_chunks(OneShot(pieces(X, y)), epochs=1)


def test_every_pass_must_give_the_same_rows(whole):
    X, y, _ = whole
    passes = []

    def shrinking():
        passes.append(1)
        return pieces(X, y)[:7 - len(passes)]

    with pytest.raises(ValueError, match="a pass yielded 750 rows where the first gave 900"):
        gdcore.fit_chunks(shrinking, epochs=3)


def test_a_callable_returning_one_generator_is_named_on_the_second_pass(whole):
    """A callable that returns the same generator every time gives nothing on the second
    pass: that is a source giving other rows, not data without rows ("no data" was said)."""
    X, y, _ = whole
    spent = iter(pieces(X, y))
    with pytest.raises(ValueError, match="a pass yielded no rows where the first gave 1000.*"
                                         "fresh iterable each call"):
        gdcore.fit_chunks(lambda: spent, epochs=3, precompute=False)


@pytest.mark.parametrize("returned", [5, None])
def test_a_callable_returning_no_iterable_is_named(returned):
    """A callable source returning no iterable raised Python's "'int' object is not
    iterable", which named neither chunks nor the callable."""
    with pytest.raises(TypeError, match=f"chunks: the callable returned "
                                        f"{type(returned).__name__} .*, not an iterable of"):
        gdcore.fit_chunks(lambda: returned, epochs=2)


@pytest.mark.parametrize("scale", [1e300, 1e-300])
@pytest.mark.parametrize("precompute", [False, True])
def test_weights_at_any_scale_as_fit(whole, scale, precompute):
    """Weights are brought near 1 by one power of two over all chunks, as gdcore.fit brings
    them (weights of 1e300 overflowed the chunks' sums: DivergenceError, or a Gram matrix said
    to overflow because of X and y)."""
    X, y, w = whole
    y = y * 1e3     # Σ sᵢrᵢ² of weights 1e300 passes float64's range
    options = dict(optimizer="adam", lr=0.05, epochs=6, tol=None, precompute=precompute)
    expected = gdcore.fit(X, y, sample_weight=w * scale, **options)
    got = gdcore.fit_chunks(pieces(X, y, w * scale), **options)
    np.testing.assert_allclose(got.loss_history, expected.loss_history, rtol=1e-10)
    np.testing.assert_allclose(got.coef, expected.coef, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("precompute", [False, True])
def test_weights_spanning_past_float64_are_refused_before_any_update(whole, precompute):
    X, y, _ = whole
    w = np.ones(len(y))
    w[0], w[400] = 1e300, 1e-30     # 1e-30 is 0 once 1e300 is brought near 1
    with pytest.raises(ValueError, match=r"sample_weight\[400\] = 1e-30 is 0 in float64"):
        gdcore.fit_chunks(pieces(X, y, w), epochs=3, precompute=precompute,
                          callback=lambda info: pytest.fail("an epoch ran"))


def test_chunks_without_weights_beside_huge_weights(whole):
    """A chunk given without weights has unit weights; beside chunks of weights near 1e300
    (scaled by one power of two) it is scaled alike, so the fit is that of explicit ones."""
    X, y, w = whole
    w = np.ones(len(y))
    w[500:] = 1e300
    y = y * 1e3
    options = dict(optimizer="adam", lr=0.05, epochs=5, tol=None)
    mixed = [(X[:500], y[:500]), (X[500:], y[500:], w[500:])]
    expected = gdcore.fit(X, y, sample_weight=w, precompute=False, **options)
    got = gdcore.fit_chunks(mixed, **options)
    np.testing.assert_allclose(got.loss_history, expected.loss_history, rtol=1e-10)
    np.testing.assert_allclose(got.coef, expected.coef, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("precompute", [False, True, "auto"])
@pytest.mark.parametrize("scale", [1.0, 1e40, 1e-40, 1e-45])
def test_float64_weights_past_float32s_range_fit_float32_x_as_fit(whole, precompute, scale):
    """float64 weights with float32 X are scaled by one power of two over all chunks before
    each chunk's are converted, as gdcore.fit scales them: past float32's range (~3.4e38) or
    all below its normal range (~1.2e-38) they were refused (too large, 0 in float32, or
    keeping fewer than 24 bits).  The fit is gdcore.fit's on the whole data, for one more
    pass (none for weights that need no scaling); the caller's arrays are left alone."""
    X, y, w = whole
    X, y, w = X.astype(np.float32), y.astype(np.float32), w * scale
    chunks = pieces(X, y, w)
    given = [tuple(part.copy() for part in chunk) for chunk in chunks]
    source = CountingSource(chunks)
    options = dict(optimizer="adam", lr=0.05, epochs=7, tol=None)
    got = gdcore.fit_chunks(source, precompute=precompute, **options)
    expected = gdcore.fit(X, y, sample_weight=w, precompute=False, **options)
    assert got.coef.dtype == np.float32
    np.testing.assert_allclose(got.loss_history, expected.loss_history, rtol=1e-6)
    np.testing.assert_allclose(got.coef, expected.coef, rtol=1e-6)
    assert got.intercept == pytest.approx(expected.intercept, rel=1e-6)
    extra = 0 if scale == 1.0 else 1
    assert source.passes == (options["epochs"] if precompute is False else 1) + extra
    for chunk, copy in zip(chunks, given):
        for part, before in zip(chunk, copy):
            np.testing.assert_array_equal(part, before)


def lost_weight_cases(n):
    """float64 weights (or None: unit weights) with which float32 X loses a positive one, by
    where it is lost: unscaled; once scaled down for a weight near 1e30 elsewhere; once
    scaled up, all weights being tiny; a unit weight, beside a weight near 1e46."""
    unscaled, scaled, tiny, unit = (np.ones(n) for _ in range(4))
    unscaled[400] = scaled[400] = 1e-50
    scaled[900] = 1e30
    tiny *= 1e-40
    tiny[400] = 1e-90
    unit[900] = 1e46
    return dict(unscaled=unscaled, scaled=scaled, tiny=tiny, unit=unit)


@pytest.mark.parametrize("precompute", [False, True])
@pytest.mark.parametrize("case", ["unscaled", "scaled", "tiny", "unit"])
def test_a_weight_float32_loses_is_named_as_fit_names_it(whole, precompute, case):
    """A positive weight that becomes 0 in float32 is refused before any update, named as
    gdcore.fit names it in the whole data, whichever chunk holds the largest weight: 0 in
    float32 as given, or once the weights are scaled by a power of two (they span more than
    float32's range), a chunk given without weights (unit weights) too.  Each chunk narrowed
    its weights first: "0 in float32 (X's dtype)" for a weight that scaling loses, and
    "too large for float32" for 1e46."""
    X, y, _ = whole
    X, y = X.astype(np.float32), y.astype(np.float32)
    w = lost_weight_cases(len(y))[case]
    with pytest.raises(ValueError) as caught:
        gdcore.fit(X, y, sample_weight=w, epochs=3)
    expected = str(caught.value)
    chunks = pieces(X, y, w)
    if case == "unit":
        chunks[0] = chunks[0][:2]
        assert expected.startswith("sample_weight[0] = 1.0 is 0 in float32 once the weights are "
                                   "scaled by 2^-153")
    row = 0 if case == "unit" else 400
    with pytest.raises(ValueError) as caught:
        gdcore.fit_chunks(chunks, epochs=3, precompute=precompute,
                          callback=lambda info: pytest.fail("an epoch ran"))
    chunk = row // 150
    assert str(caught.value) == f"chunk {chunk} (from row {150 * chunk} of the whole data): " \
                                f"{expected}"


def test_a_chunk_of_another_type_is_named_by_the_type_given(whole):
    X, y, _ = whole
    first = (X[:10].astype(np.float32), y[:10])
    with pytest.raises(TypeError, match="chunk 1: X is float16, computed as float64, but chunk "
                                        "0's is float32"):
        gdcore.fit_chunks([first, (X[10:20].astype(np.float16), y[10:20])], epochs=2)


@pytest.mark.parametrize("precompute", [False, True])
def test_empty_chunks_add_nothing(whole, precompute):
    """An empty row group or a filter's empty piece is skipped: the fit is that of the other
    chunks; its width must still be the data's."""
    X, y, w = whole
    options = dict(optimizer="adam", lr=0.05, epochs=6, tol=None, precompute=precompute)
    plain = gdcore.fit_chunks(pieces(X, y, w), **options)
    empty = (X[:0], y[:0], w[:0])
    padded = [empty] + pieces(X, y, w)[:3] + [empty, empty] + pieces(X, y, w)[3:] + [empty]
    np.testing.assert_array_equal(gdcore.fit_chunks(padded, **options).coef, plain.coef)
    with pytest.raises(ValueError, match="chunk 2: X has 4 features but the chunks before it "
                                         "have 5"):
        gdcore.fit_chunks(pieces(X, y)[:2] + [(X[:0, :4], y[:0])], **options)
    with pytest.raises(ValueError, match="no data"):
        gdcore.fit_chunks([empty, empty], **options)


def test_data_frame_chunks_are_matched_by_column_name(whole):
    """Chunks read with their columns in another order are the same data (the coefficients
    belong to names); other names are refused, naming the chunk."""
    pd = pytest.importorskip("pandas", reason="DataFrame chunks need the optional pandas")
    X, y, _ = whole
    names = ["a", "b", "c", "d", "e"]
    frames = [(pd.DataFrame(Xc, columns=names), yc) for Xc, yc in pieces(X, y)]
    shuffled = [(frame[["e", "c", "a", "d", "b"]] if i % 2 else frame, yc)
                for i, (frame, yc) in enumerate(frames)]
    options = dict(optimizer="gd", lr=0.1, epochs=8, tol=None)
    in_order = gdcore.fit_chunks(frames, **options)
    np.testing.assert_array_equal(gdcore.fit_chunks(shuffled, **options).coef, in_order.coef)
    np.testing.assert_allclose(in_order.coef,
                               gdcore.fit(X, y, precompute=False, **options).coef, rtol=1e-12)
    renamed = frames[:1] + [(frames[1][0].rename(columns={"c": "z"}), frames[1][1])]
    with pytest.raises(ValueError, match=r"chunk 1 \(from row 150 .*missing \['c'\], not in "
                                         r"the first \['z'\]"):
        gdcore.fit_chunks(renamed, **options)


def test_pyarrow_chunks_are_matched_by_column_name(whole):
    pa = pytest.importorskip("pyarrow", reason="pyarrow is an optional extra")
    X, y, _ = whole
    names = ["a", "b", "c", "d", "e"]
    tables = [(pa.table({name: Xc[:, k] for k, name in enumerate(names)}), yc)
              for Xc, yc in pieces(X, y)]
    shuffled = [(table.select(["e", "c", "a", "d", "b"]) if i % 2 else table, yc)
                for i, (table, yc) in enumerate(tables)]
    options = dict(optimizer="gd", lr=0.1, epochs=8, tol=None)
    np.testing.assert_array_equal(gdcore.fit_chunks(shuffled, **options).coef,
                                  gdcore.fit_chunks(pieces(X, y), **options).coef)
    flags = pa.table({"a": [1.0, 2.0], "f": pa.array([True, False]).dictionary_encode()})
    with pytest.raises(TypeError, match="X has boolean dtype"):
        gdcore.fit_chunks([(flags, [1.0, 2.0])])


def counted_value_checks(monkeypatch):
    """The arrays check_all_finite is given, by name, from here on."""
    from gdcore import _validation
    checked = []
    original = _validation.check_all_finite

    def counting(name, arr, *args, **kwargs):
        checked.append(name)
        return original(name, arr, *args, **kwargs)
    monkeypatch.setattr(_validation, "check_all_finite", counting)
    return checked


@pytest.mark.parametrize("weighted", [False, True])
def test_later_passes_read_the_values_once_for_their_sums(whole, monkeypatch, weighted):
    """The first pass checks every value for NaN/inf; the later passes of a streamed fit read
    X once, for its sums, and check X and y only in a chunk whose sums are not finite (X's
    check took about half of an epoch).  Shapes, dtypes, rows and weights (O(n), and their
    sum is taken as they are read) are still checked every pass."""
    X, y, w = whole
    chunks = pieces(X, y, w if weighted else None)
    checked = counted_value_checks(monkeypatch)
    got = gdcore.fit_chunks(chunks, optimizer="adam", lr=0.05, epochs=6, tol=None)
    # X and y: the first pass's only; the weights every pass
    assert checked.count("X") == checked.count("y") == len(chunks)
    assert checked.count("sample_weight") == (6 * len(chunks) if weighted else 0)
    expected = gdcore.fit(X, y, sample_weight=w if weighted else None, optimizer="adam",
                          lr=0.05, epochs=6, tol=None, precompute=False)
    np.testing.assert_allclose(got.loss_history, expected.loss_history, rtol=1e-10)


def first_pass_message(chunks):
    with pytest.raises(ValueError) as caught:
        gdcore.fit_chunks(chunks, epochs=3, callback=lambda info: pytest.fail("an epoch ran"))
    return str(caught.value)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["X first", "X last", "y", "weight", "weight, scaled"])
def test_a_value_gone_bad_in_a_later_pass_is_named_as_the_first_pass_names_it(
        whole, dtype, bad, where):
    """A source whose data changes between passes (a file rewritten mid-fit): a NaN or an
    infinity in X or y that a later pass reads makes its chunk's sums non-finite, and that
    chunk is then checked, naming the value as the first pass would have, not as divergence
    (weights are checked as they are read, every pass)."""
    X, y, w = whole
    X, y = X.astype(dtype), y.astype(dtype)
    w = w * (1e30 if where.endswith("scaled") else 1.0)
    spoiled = [tuple(np.array(part, copy=True) for part in chunk) for chunk in pieces(X, y, w)]
    chunk, part, index = {"X first": (2, 0, (0, 0)), "X last": (6, 0, (99, 4)),
                          "y": (4, 1, (17,)), "weight": (3, 2, (149,)),
                          "weight, scaled": (5, 2, (0,))}[where]
    spoiled[chunk][part][index] = bad
    expected = first_pass_message(spoiled)
    assert expected.startswith(f"chunk {chunk} (from row {150 * chunk} of the whole data): ")
    passes = []
    first_epoch_pass = 3 if where.endswith("scaled") else 2   # weights past 2^64: read again

    def source():
        passes.append(1)
        return pieces(X, y, w) if len(passes) <= first_epoch_pass else spoiled

    epochs = []
    with pytest.raises(ValueError) as caught:
        gdcore.fit_chunks(source, lr=0.01, epochs=5, tol=None,
                          callback=lambda info: epochs.append(info.epoch))
    assert str(caught.value) == expected
    assert epochs == [1, 2]          # found in the third epoch's pass
    assert len(passes) == first_epoch_pass + 1


@pytest.mark.parametrize("weight", ["-1", "NaN", "lost", "lost once scaled"])
@pytest.mark.parametrize("where", ["X", "y"])
def test_a_value_gone_bad_beside_a_bad_weight_is_named_as_the_first_pass_names_it(
        whole, where, weight):
    """A chunk read again with a NaN in X (or y) and a bad weight: -1, NaN, or a positive
    one that becomes 0 in X's dtype (1e-46 with float32 X, or 1e-300 among weights scaled by
    2^-200).  The first pass names the NaN (X and y are checked before the weights), and so
    does a later pass, which reads X and y without their check and converts the weights
    after the chunk is read."""
    X, y, w = whole
    bad = {"-1": -1.0, "NaN": np.nan, "lost": 1e-46, "lost once scaled": 1e-300}[weight]
    first_epoch_pass = 2
    if weight == "lost":
        X, y = X.astype(np.float32), y.astype(np.float32)
    elif weight == "lost once scaled":
        w, first_epoch_pass = w * 2.0 ** 200, 3      # weights past 2^64: read again
    spoiled = [tuple(np.array(part, copy=True) for part in chunk) for chunk in pieces(X, y, w)]
    spoiled[4][0 if where == "X" else 1][(17, 2) if where == "X" else (17,)] = np.nan
    spoiled[4][2][30] = bad
    expected = first_pass_message(spoiled)
    assert expected.startswith(f"chunk 4 (from row 600 of the whole data): {where} contains "
                               f"NaN or infinity (first at index [617")
    passes = []

    def source():
        passes.append(1)
        return pieces(X, y, w) if len(passes) <= first_epoch_pass else spoiled
    with pytest.raises(ValueError) as caught:
        gdcore.fit_chunks(source, lr=0.01, epochs=5, tol=None)
    assert str(caught.value) == expected
    assert len(passes) == first_epoch_pass + 1


@pytest.mark.parametrize("change", ["a column more", "float32"])
def test_a_chunk_changed_beside_a_weight_lost_once_scaled_is_named_as_the_first_pass_names_it(
        whole, change):
    """A chunk read again with a column more (or as float32) and a weight that scaling makes
    0: the first pass names the chunk's columns (or dtype), which it checks as the chunk is
    read, before any weight is scaled; so does a later pass (it named the weight)."""
    X, y, w = whole
    w, first_epoch_pass = w * 2.0 ** 200, 3      # weights past 2^64: read again
    spoiled = [tuple(np.array(part, copy=True) for part in chunk) for chunk in pieces(X, y, w)]
    Xs, ys, ws = spoiled[4]
    Xs = np.hstack([Xs, Xs[:, :1]]) if change == "a column more" else Xs.astype(np.float32)
    ws[30] = 1e-300
    spoiled[4] = (Xs, ys, ws)
    with pytest.raises((ValueError, TypeError)) as caught:    # (a dtype: a TypeError)
        gdcore.fit_chunks(spoiled, epochs=3, callback=lambda info: pytest.fail("an epoch ran"))
    expected = str(caught.value)
    assert expected.startswith("chunk 4: X ") and "sample_weight" not in expected, expected
    passes = []

    def source():
        passes.append(1)
        return pieces(X, y, w) if len(passes) <= first_epoch_pass else spoiled
    with pytest.raises((ValueError, TypeError)) as caught:
        gdcore.fit_chunks(source, lr=0.01, epochs=5, tol=None)
    assert str(caught.value) == expected
    assert len(passes) == first_epoch_pass + 1


def test_finite_chunks_whose_sums_overflow_in_a_later_pass_diverge(whole):
    """A chunk's sums that are not finite while its values are: the loss overflowed, which is
    divergence, whichever pass reads it."""
    X, y, _ = whole
    with pytest.raises(gdcore.DivergenceError, match="stopped being finite in epoch"):
        gdcore.fit_chunks(pieces(X * 1e100, y), lr=10.0, epochs=50, tol=None)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("d", [1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16, 17, 24, 31, 33, 40, 64,
                               100])
@pytest.mark.parametrize("n", [37, 2000])
def test_any_nan_or_infinity_makes_a_blocks_sums_non_finite(dtype, weighted, d, n):
    """What later passes rely on, through every row kernel (short rows of each width, long
    rows; rows in order d <= 12 also in the row-block kernels, which take 64 float64 or 128
    float32 rows or more, and 2,000 rows are cut in two parts on two threads) on one and two
    threads: one NaN or ±inf anywhere in X, y or the weights, at θ with zeros (inf·0 is
    NaN) and without, gives sums that are not all finite; clean data gives finite ones."""
    rng = np.random.default_rng(d)
    X = rng.standard_normal((n, d)).astype(dtype)
    y = rng.standard_normal(n).astype(dtype)
    w = rng.uniform(0.0, 2.0, n).astype(dtype) if weighted else np.empty(0, dtype)
    if weighted:
        w[::5] = 0.0          # a value of a row of weight 0 counts as much
    thetas = [np.zeros(d + 1, dtype), rng.standard_normal(d + 1).astype(dtype)]
    places = [("X", (i, j)) for i in (0, 1, n // 2, n - 2, n - 1)
              for j in sorted({0, d // 2, d - 1})]
    places += [("X", (int(i), int(j))) for i, j in zip(rng.integers(0, n, 12),
                                                          rng.integers(0, d, 12))]
    places += [("y", (i,)) for i in (0, n // 3, n - 1)]
    places += [("w", (i,)) for i in (0, 5, n - 1)] if weighted else []
    for theta in thetas:
        for n_threads in (1, 2):
            assert np.isfinite(gdcore._core.block_sums_of(X, y, w, theta, n_threads)).all()
            for name, index in places:
                for bad in (np.nan, np.inf, -np.inf):
                    arrays = {"X": X.copy(), "y": y.copy(), "w": w.copy()}
                    arrays[name][index] = bad
                    sums = gdcore._core.block_sums_of(arrays["X"], arrays["y"], arrays["w"],
                                                      theta, n_threads)
                    assert not np.isfinite(sums).all(), (name, index, bad, n_threads)
