"""Comparing two groups of per-seed scores: the difference of means, Welch's t-test and a bootstrap interval."""


def compare(a, b, resamples=10_000, seed=0):
    """mean(a) - mean(b) with Welch's t-test (t, p, df) and a bootstrap 95% interval (seeds resampled within
    each group); a and b: per-seed scores."""
    import numpy as np  # noqa: PLC0415
    from scipy import stats  # noqa: PLC0415

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    result = {"difference": float(a.mean() - b.mean())}
    if len(a) >= 2 and len(b) >= 2 and (a.std() > 0 or b.std() > 0):
        test = stats.ttest_ind(a, b, equal_var=False)
        result.update(t=float(test.statistic), p=float(test.pvalue), df=float(test.df))
    rng = np.random.RandomState(seed)
    draws = (rng.choice(a, (resamples, len(a))).mean(1) - rng.choice(b, (resamples, len(b))).mean(1))
    result["interval_95"] = [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))]
    return result


def outcome(interval, lower_is_better=True):
    """"ahead", "at parity" or "behind" from a 95% interval of (ours - reference)."""
    low, high = interval
    if low <= 0 <= high:
        return "at parity"
    better = high < 0 if lower_is_better else low > 0
    return "ahead" if better else "behind"
