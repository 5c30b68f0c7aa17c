"""Streaming observers against numpy references computed on the whole array."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from qdqtool.calibrate.entropy import QUANTIZED_LEVELS, kl_divergences
from qdqtool.calibrate.observers import METHODS, make_observer
from qdqtool.errors import QdqError, RangeError
from qdqtool.trt.scales import scale_from_amax


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def feed(observer, values: np.ndarray, batches: int) -> None:
    for batch in np.array_split(values, batches):
        observer.update(batch)


def gaussian_with_outliers(rng: np.random.Generator) -> np.ndarray:
    values = rng.standard_normal(200_000).astype(np.float32)
    values[rng.choice(values.size, 6, replace=False)] = [40.0, -45.0, 50.0, -55.0, 60.0, 38.0]
    return values


def fake_quant_mse(values: np.ndarray, amax: float) -> float:
    scale = amax / 127.0
    quantized = np.clip(np.round(values / scale), -128, 127) * scale
    return float(np.mean((values.astype(np.float64) - quantized) ** 2))


def reference_kl(counts: np.ndarray, kept: int, levels: int = QUANTIZED_LEVELS, eps: float = 1e-4) -> float:
    """Bin-by-bin KL(P||Q) as in Migacz's slides / MXNet, with mass-preserving smoothing as ONNX Runtime."""
    sliced = counts[:kept].astype(np.float64)
    p = sliced.copy()
    p[-1] += counts[kept:].sum()
    nonzero = p > 0
    per_level = kept // levels
    q = np.zeros(kept)
    for level in range(levels):
        start = level * per_level
        end = kept if level == levels - 1 else start + per_level
        norm = nonzero[start:end].sum()
        if norm:
            q[start:end] = np.where(nonzero[start:end], sliced[start:end].sum() / norm, 0.0)

    def smooth(dist: np.ndarray) -> np.ndarray:
        zeros = dist == 0
        taken = eps * zeros.sum() / (~zeros).sum()
        return dist + eps * zeros - taken * ~zeros

    p, q = smooth(p), smooth(q)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


def test_every_method_has_an_observer_named_after_it():
    for method in METHODS:
        observer = make_observer(method)
        assert observer.method == method
        assert observer.count == 0 and observer.observed_max == 0.0


def test_max_is_exact_over_batches_and_float16(rng):
    values = (rng.standard_normal((64, 3, 8, 8)) * 7).astype(np.float16)
    observer = make_observer("max")
    for batch in values:
        observer.update(batch)
    expected = float(np.abs(values.astype(np.float32)).max())
    assert observer.amax() == expected
    assert observer.observed_max == expected
    assert observer.count == values.size


@pytest.mark.parametrize("percentile", [90.0, 99.0, 99.99])
@pytest.mark.parametrize("distribution", ["normal", "laplace", "relu"])
def test_percentile_within_one_bin_of_numpy(rng, percentile, distribution):
    values = {
        "normal": rng.standard_normal(100_000),
        "laplace": rng.laplace(size=100_000) * 3,
        "relu": np.maximum(rng.standard_normal(100_000), 0),
    }[distribution].astype(np.float32)
    observer = make_observer("percentile", percentile=percentile)
    feed(observer, values, 10)
    expected = np.percentile(np.abs(values), percentile)
    assert abs(observer.amax() - expected) <= observer.histogram.bin_width


def test_streaming_histogram_equals_one_batch_when_range_doubles(rng):
    # each batch is wider than the one before: the range doubles several times over the stream
    batches = [rng.standard_normal(4_000).astype(np.float32) * (1.0 + 0.35 * k) for k in range(40)]
    streamed = make_observer("entropy")
    for batch in batches:
        streamed.update(batch)
    at_once = make_observer("entropy")
    at_once.update(batches[0])
    at_once.update(np.concatenate(batches[1:]))

    first_range = float(np.abs(batches[0]).max())
    doublings = np.log2(streamed.histogram.range_max / first_range)
    assert doublings >= 3 and abs(doublings - round(doublings)) < 1e-5  # first range: max plus a 2^-20 margin
    assert streamed.histogram.range_max == at_once.histogram.range_max
    np.testing.assert_array_equal(streamed.histogram.signed_counts, at_once.histogram.signed_counts)
    reference, _ = np.histogram(
        np.abs(np.concatenate(batches)).astype(np.float64),
        bins=streamed.histogram.num_bins,
        range=(0, streamed.histogram.range_max),
    )
    np.testing.assert_array_equal(streamed.histogram.counts, reference)


def test_a_huge_jump_keeps_every_count(rng):
    observer = make_observer("percentile")
    observer.update(rng.standard_normal(1_000).astype(np.float32) * 1e-3)
    observer.update(np.array([1e6], dtype=np.float32))
    assert observer.histogram.counts.sum() == 1_001 == observer.count
    assert observer.histogram.counts[0] == 1_000
    assert observer.histogram.range_max > 1e6


def test_entropy_divergences_match_bin_by_bin_reference(rng):
    observer = make_observer("entropy")
    observer.update(gaussian_with_outliers(rng))
    counts = observer.histogram.counts
    kept, divergences = kl_divergences(counts)
    sample = np.linspace(0, kept.size - 1, 25).astype(int)
    expected = np.array([reference_kl(counts, int(kept[k])) for k in sample])
    np.testing.assert_allclose(divergences[sample], expected, rtol=1e-3, atol=1e-7)
    best = int(kept[np.argmin(divergences)])
    all_reference = [reference_kl(counts, int(i)) for i in kept]
    assert reference_kl(counts, best) <= min(all_reference) * (1 + 1e-3)


def test_entropy_clips_far_outliers_of_a_gaussian(rng):
    values = gaussian_with_outliers(rng)
    observer = make_observer("entropy")
    feed(observer, values, 8)
    amax = observer.amax()
    assert 3.0 * values[np.abs(values) < 10].std() < amax < 0.25 * observer.observed_max
    assert observer.observed_max == float(np.abs(values).max())


def test_entropy_keeps_the_range_of_a_uniform_distribution(rng):
    values = rng.uniform(-3.0, 3.0, 100_000).astype(np.float32)
    observer = make_observer("entropy")
    feed(observer, values, 5)
    assert observer.amax() >= 0.97 * float(np.abs(values).max())


def test_mse_on_laplace_clips_the_tail_and_beats_max(rng):
    values = rng.laplace(scale=1.0, size=200_000).astype(np.float32)
    observer = make_observer("mse")
    feed(observer, values, 10)
    amax = observer.amax()
    top = float(np.abs(values).max())
    assert np.percentile(np.abs(values), 99) < amax < top
    assert fake_quant_mse(values, amax) < fake_quant_mse(values, top)


def array_sizes(observer) -> dict:
    state = vars(getattr(observer, "histogram", observer))
    return {name: value.nbytes for name, value in state.items() if isinstance(value, np.ndarray)}


@pytest.mark.parametrize("method", METHODS)
def test_memory_does_not_grow_with_batches(rng, method):
    batch = rng.standard_normal(2_000).astype(np.float32)
    growth = [1.0 + step / 50.0 for step in range(500)]  # the range doubles several times on the way
    tracemalloc.start()
    try:
        observer = make_observer(method)
        observer.update(batch)
        sizes_after_one = array_sizes(observer)
        memory_after_one, _ = tracemalloc.get_traced_memory()
        for factor in growth[1:]:
            observer.update(batch * factor)
        memory_after_500, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert array_sizes(observer) == sizes_after_one
    assert memory_after_500 - memory_after_one < 4_096
    assert observer.count == 500 * batch.size


@pytest.mark.parametrize("method", METHODS)
def test_all_zero_tensor_gives_zero_amax(method):
    observer = make_observer(method)
    observer.update(np.zeros((2, 3, 4), dtype=np.float32))
    assert observer.amax() == 0.0
    assert observer.count == 24


@pytest.mark.parametrize("method", METHODS)
def test_zeros_before_data_are_kept_and_non_finite_values_ignored(rng, method):
    observer = make_observer(method)
    observer.update(np.zeros(5_000, dtype=np.float32))
    data = rng.standard_normal(5_000).astype(np.float32)
    observer.update(np.concatenate([data, [np.nan, np.inf, -np.inf]]).astype(np.float32))
    assert observer.count == 10_000
    assert observer.observed_max == float(np.abs(data).max())
    amax = observer.amax()
    assert np.isfinite(amax) and 0.0 < amax <= observer.observed_max
    if method != "max":
        assert observer.histogram.counts[0] >= 5_000


def test_scale_from_amax():
    assert scale_from_amax(12.7) == pytest.approx(0.1)
    assert scale_from_amax(2.0, qmax=127) == pytest.approx(2.0 / 127)
    assert 0.0 < scale_from_amax(0.0) < 1e-10
    with pytest.raises(RangeError):
        scale_from_amax(float("nan"))
    with pytest.raises(RangeError):
        scale_from_amax(-1.0)


@pytest.mark.parametrize(
    "method, options",
    [
        ("kl", {}),
        ("percentile", {"percentile": 0.0}),
        ("percentile", {"percentile": 101.0}),
        ("mse", {"num_bins": 1000}),
    ],
)
def test_bad_settings_are_refused_with_a_hint(method, options):
    with pytest.raises(QdqError, match=r"use|pass"):
        make_observer(method, **options)
