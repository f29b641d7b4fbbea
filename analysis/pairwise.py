"""Scaling paired comparisons: Thurstone Case V (in JOD) and Bradley-Terry maximum likelihood.

A paired-comparison study stores one row per judgment: a rater saw two conditions (methods) of one
image and chose one. This module turns judgments into win-count matrices and those into interval
scales, with their standard errors and bootstrap intervals.

``judgments`` columns: ``rater_id``, ``dataset``, ``image``, ``method_a``, ``method_b``, ``choice``
(the preferred method's name, one of the two), and optionally ``kind`` ("test", "gold", ...): only
``kind == "test"`` rows (every row when there is no ``kind`` column) are scaled.

Units
-----
Thurstone Case V: ``P(i preferred to j) = Phi((q_i - q_j) / sigma)``. Scores are in JOD (just
objectionable differences): 1 JOD = 75% of observers prefer the better condition, so
``sigma = 1 / Phi^-1(0.75) = 1.4826`` (Perez-Ortiz & Mantiuk 2017). SUREAL's
``ThurstoneMlePairedCompSubjectiveModel`` uses sigma = 1: its scores times 1.4826 are ours, up to
an offset. Bradley-Terry: ``P(i preferred to j) = 1 / (1 + exp(-(v_i - v_j)))``, ``v = log p`` in
natural-log units (SUREAL's ``BradleyTerryMlePairedCompSubjectiveModel``, BradleyTerry2's ``BTm``).

Identification and gaps
-----------------------
A scale is defined up to an offset, and only within a connected comparison graph: two conditions
with no chain of comparisons between them have no common scale (:func:`components`). Each connected
component is scaled apart with mean zero, and every result says which component a condition is in;
nothing is scaled across components. A pair judged unanimously has no finite maximum-likelihood
difference; ``prior`` adds a weak pseudo-judgment (half a judgment per compared pair, split evenly
by default) that keeps it finite and moves dense data by a few hundredths of a JOD. ``prior=0``
gives the plain MLE, equal to SUREAL's, and raises when it does not exist.

References
----------
1. Thurstone, L. L. (1927). A law of comparative judgment. Psychological Review 34, 273-286.
2. Bradley, R. A. & Terry, M. E. (1952). Rank analysis of incomplete block designs I. Biometrika 39.
3. Perez-Ortiz, M. & Mantiuk, R. K. (2017). A practical guide and software for analysing pairwise
   comparison experiments. arXiv:1712.03686.
4. Hunter, D. R. (2004). MM algorithms for generalized Bradley-Terry models. Annals of Statistics 32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special
from scipy import stats as sps

from analysis._frames import ordered, percentile_interval, require_columns

JUDGMENT_COLUMNS = ("rater_id", "dataset", "image", "method_a", "method_b", "choice")
JOD_SIGMA = 1.0 / sps.norm.ppf(0.75)  # 1.4826: 1 JOD = 75% preference
DEFAULT_PRIOR = 0.5
MODELS = ("thurstone", "bt")

__all__ = [
    "JOD_SIGMA", "JUDGMENT_COLUMNS", "MODELS", "Scale", "ScaleNotEstimable", "components", "fit_scale",
    "link_terms", "pair_counts", "preference_matrix", "scale_per_dataset", "scale_per_image", "test_judgments",
    "win_matrix",
]


class ScaleNotEstimable(ValueError):
    """The maximum-likelihood scale does not exist (a condition never won or never lost within its
    component, with ``prior=0``)."""


def test_judgments(judgments: pd.DataFrame) -> pd.DataFrame:
    """The judgments that are scaled: ``kind == "test"`` rows, or every row without ``kind``; rows
    whose choice is missing are no judgment. Raises on a choice that is neither of the pair."""
    require_columns(judgments, JUDGMENT_COLUMNS, "judgments")
    rows = judgments if "kind" not in judgments.columns else judgments[judgments["kind"] == "test"]
    rows = rows[rows["choice"].notna()]
    bad = (rows["choice"] != rows["method_a"]) & (rows["choice"] != rows["method_b"])
    if bad.any():
        first = rows[bad].iloc[0]
        raise ValueError(f"judgment of rater {first['rater_id']!r} on {first['dataset']}/{first['image']}: choice "
                         f"{first['choice']!r} is neither {first['method_a']!r} nor {first['method_b']!r}")
    same = rows["method_a"] == rows["method_b"]
    if same.any():
        first = rows[same].iloc[0]
        raise ValueError(f"judgment of rater {first['rater_id']!r} on {first['dataset']}/{first['image']} compares "
                         f"{first['method_a']!r} with itself")
    return rows


def _winner_loser(rows: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    winner = rows["choice"]
    loser = rows["method_b"].where(rows["choice"] == rows["method_a"], rows["method_a"])
    return winner, loser


def win_matrix(judgments: pd.DataFrame, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """``W[i, j]``: how often ``i`` was preferred to ``j`` (rows win), over the test judgments given.

    ``methods`` fixes the order (and may name conditions never judged: their rows stay zero).
    """
    rows = test_judgments(judgments)
    winner, loser = _winner_loser(rows)
    names = list(methods) if methods is not None else ordered(pd.concat([rows["method_a"], rows["method_b"]]), None)
    index = {m: k for k, m in enumerate(names)}
    unknown = set(winner) - index.keys() | set(loser) - index.keys()
    if unknown:
        raise ValueError(f"judgments name methods not in the list given: {sorted(unknown, key=str)}")
    w = np.zeros((len(names), len(names)))
    np.add.at(w, (winner.map(index).to_numpy(int), loser.map(index).to_numpy(int)), 1.0)
    return pd.DataFrame(w, index=pd.Index(names, name="preferred"), columns=pd.Index(names, name="over"))


def preference_matrix(judgments: pd.DataFrame, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Share of the judgments of each pair in which the row method was preferred (NaN: never compared)."""
    w = win_matrix(judgments, methods)
    n = w.to_numpy() + w.to_numpy().T
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(n > 0, w.to_numpy() / n, np.nan)
    return pd.DataFrame(share, index=w.index, columns=w.columns)


def components(wins: np.ndarray) -> np.ndarray:
    """Connected component of each condition in the comparison graph (an edge: compared at least once).

    Labels are 0, 1, ... in order of each component's first condition.
    """
    n = np.asarray(wins) + np.asarray(wins).T
    m = n.shape[0]
    label = np.full(m, -1)
    current = 0
    for start in range(m):
        if label[start] >= 0:
            continue
        stack = [start]
        label[start] = current
        while stack:
            i = stack.pop()
            for j in np.flatnonzero(n[i] > 0):
                if label[j] < 0:
                    label[j] = current
                    stack.append(j)
        current += 1
    return label


def _check_estimable(wins: np.ndarray, label: np.ndarray) -> None:
    """Without a prior the MLE exists iff, within each component, the 'beat at least once' graph is
    strongly connected (Zermelo 1929; Ford 1957): every condition beat and lost to its component."""
    beat = np.asarray(wins) > 0
    for c in np.unique(label):
        members = np.flatnonzero(label == c)
        if members.size < 2:
            continue
        sub = beat[np.ix_(members, members)]
        for graph in (sub, sub.T):  # reachable from the first member along wins, and along losses
            seen = np.zeros(members.size, bool)
            seen[0] = True
            stack = [0]
            while stack:
                i = stack.pop()
                for j in np.flatnonzero(graph[i] & ~seen):
                    seen[j] = True
                    stack.append(j)
            if not seen.all():
                raise ScaleNotEstimable(
                    "the maximum-likelihood scale is infinite: within a connected group of conditions some "
                    "were preferred unanimously (never lost, or never won); use a prior > 0")


def link_terms(model: str, d: np.ndarray):
    """log P, d log P / dd and -d2 log P / dd2 of one comparison won at score difference ``d`` (scale
    units), the model's link in one place (the scales here, the posterior of :mod:`analysis.active_sampling`)."""
    if model == "thurstone":
        x = d / JOD_SIGMA
        log_p = special.log_ndtr(x)
        mills = np.exp(sps.norm.logpdf(x) - log_p)  # phi / Phi, stable far in the tail
        return log_p, mills / JOD_SIGMA, mills * (x + mills) / JOD_SIGMA**2
    if model == "bt":
        log_p = -np.logaddexp(0.0, -d)
        q = special.expit(-d)  # 1 - P
        return log_p, q, q * (1.0 - q)
    raise ValueError(f"unknown model {model!r}: use one of {MODELS}")


def _newton(model: str, wins: np.ndarray, label: np.ndarray, start: np.ndarray | None = None,
            tol: float = 1e-10, max_iter: int = 200) -> np.ndarray:
    """Maximum-likelihood scores of a batch of win matrices ``wins[b, i, j]`` (mean zero in each
    component). The log-likelihood is concave in the scores (log Phi and log-logistic are), so
    Newton's method with step halving converges from zero."""
    batch, m, _ = wins.shape
    centre = np.zeros((m, m))
    for c in np.unique(label):
        members = label == c
        centre[np.ix_(members, members)] = 1.0 / members.sum()
    q = np.zeros((batch, m)) if start is None else np.array(start, float).reshape(batch, m)

    def loglik(q):
        d = q[:, :, None] - q[:, None, :]
        log_p, _, _ = link_terms(model, d)
        return np.sum(wins * log_p, axis=(1, 2))

    current = loglik(q)
    for _ in range(max_iter):
        d = q[:, :, None] - q[:, None, :]
        _, slope, curv = link_terms(model, d)
        grad = np.sum(wins * slope, axis=2) - np.sum(wins * slope, axis=1)
        c = wins * curv
        c = c + np.swapaxes(c, 1, 2)  # the (i, j) edge's curvature counts both directions
        hess = c.sum(axis=2)[:, :, None] * np.eye(m) - c  # graph Laplacian: minus the Hessian
        step = np.linalg.solve(hess + centre, grad[:, :, None])[:, :, 0]
        step -= step @ centre  # stay at mean zero per component
        scale = np.ones(batch)
        for _ in range(40):
            trial = q + scale[:, None] * step
            value = loglik(trial)
            worse = value < current - 1e-12 * np.abs(current)
            if not worse.any():
                break
            scale = np.where(worse, scale / 2.0, scale)
        q, current = trial, value
        if np.max(np.abs(scale[:, None] * step)) < tol:
            break
    return q


def _fisher_covariance(model: str, wins: np.ndarray, q: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Covariance of the mean-zero scores from the observed information: the pseudo-inverse of the
    likelihood's curvature restricted to each component's sum-zero subspace (SUREAL bordered matrix)."""
    m = q.size
    d = q[:, None] - q[None, :]
    _, _, curv = link_terms(model, d)
    c = wins * curv
    c = c + c.T
    info = np.diag(c.sum(axis=1)) - c
    cov = np.full((m, m), np.nan)
    for comp in np.unique(label):
        members = np.flatnonzero(label == comp)
        if members.size == 1:
            cov[members[0], members[0]] = 0.0
            continue
        sub = info[np.ix_(members, members)]
        k = members.size
        bordered = np.block([[sub, np.ones((k, 1))], [np.ones((1, k)), np.zeros((1, 1))]])
        cov[np.ix_(members, members)] = np.linalg.pinv(bordered)[:k, :k]
    return cov


@dataclass(frozen=True)
class Scale:
    """One fitted scale: scores (mean zero within each component), their Fisher covariance and
    standard errors, the component of each condition and the judgments behind each condition."""

    def difference_se(self, i: int, j: int) -> float:
        """Standard error of ``scores[i] - scores[j]`` (NaN across components: no common scale)."""
        if self.component[i] != self.component[j]:
            return float("nan")
        return float(np.sqrt(max(self.cov[i, i] + self.cov[j, j] - 2.0 * self.cov[i, j], 0.0)))

    methods: tuple[str, ...]
    model: str
    scores: np.ndarray
    se: np.ndarray
    cov: np.ndarray
    component: np.ndarray
    judgments: np.ndarray
    prior: float

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"method": list(self.methods), "n": self.judgments.astype(int), self.model: self.scores,
                             f"{self.model}_se": self.se, "component": self.component})


def _with_prior(wins: np.ndarray, compared: np.ndarray, prior: float) -> np.ndarray:
    """Adds ``prior`` pseudo-judgments to each compared pair, half each way (a Beta(prior/2, prior/2)
    pseudo-count on each pair's preference share), so unanimous pairs stay finite."""
    if prior < 0 or not np.isfinite(prior):
        raise ValueError(f"prior must be a finite number >= 0, got {prior!r}")
    return wins + (prior / 2.0) * compared


def fit_scale(wins: pd.DataFrame | np.ndarray, model: str = "thurstone", *, prior: float = DEFAULT_PRIOR,
              methods: Sequence[str] | None = None) -> Scale:
    """Thurstone Case V (JOD) or Bradley-Terry (log-odds) maximum-likelihood scale of a win matrix.

    Parameters
    ----------
    wins : DataFrame or array
        ``wins[i, j]``: judgments preferring ``i`` to ``j`` (:func:`win_matrix`); the diagonal is ignored.
    model : "thurstone" or "bt"
    prior : float
        Pseudo-judgments added to each compared pair, split evenly (see the module docstring);
        0 gives the plain MLE (SUREAL's), and raises :class:`ScaleNotEstimable` where it is infinite.
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}: use one of {MODELS}")
    if isinstance(wins, pd.DataFrame):
        methods = list(wins.index) if methods is None else list(methods)
        w = wins.to_numpy(float)
    else:
        w = np.asarray(wins, float)
        methods = [str(k) for k in range(w.shape[0])] if methods is None else list(methods)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or len(methods) != w.shape[0]:
        raise ValueError(f"a win matrix must be square with one row per method, got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("win counts must be finite and >= 0")
    w = w.copy()
    np.fill_diagonal(w, 0.0)
    label = components(w)
    compared = ((w + w.T) > 0).astype(float)
    if prior == 0:
        _check_estimable(w, label)
    fitted = _with_prior(w, compared, prior)
    scores = _newton(model, fitted[None], label)[0]
    cov = _fisher_covariance(model, fitted, scores, label)
    return Scale(tuple(methods), model, scores, np.sqrt(np.clip(np.diag(cov), 0.0, None)), cov, label,
                 (w + w.T).sum(axis=1), float(prior))


def pair_counts(judgments: pd.DataFrame, methods: Sequence[str], units: Sequence[str]) -> tuple[np.ndarray, list]:
    """Judgment counts ``counts[u, i, j]`` (``i`` preferred to ``j``) per resampling unit.

    ``units`` names the columns that define a unit (e.g. ``["rater_id"]`` or ``["rater_id", "image"]``);
    returns the counts and the unit keys, in the order of ``groupby``.
    """
    rows = test_judgments(judgments)
    winner, loser = _winner_loser(rows)
    index = {m: k for k, m in enumerate(methods)}
    keys = rows.groupby(list(units), sort=True).ngroup().to_numpy()
    labels = rows[list(units)].drop_duplicates().sort_values(list(units)).itertuples(index=False, name=None)
    m = len(methods)
    counts = np.zeros((keys.max() + 1 if keys.size else 0, m, m))
    np.add.at(counts, (keys, winner.map(index).to_numpy(int), loser.map(index).to_numpy(int)), 1.0)
    return counts, list(labels)


def _bootstrap_scores(model: str, counts: np.ndarray, rater_of: np.ndarray, image_of: np.ndarray | None,
                      compared: np.ndarray, label: np.ndarray, prior: float, n_boot: int,
                      rng: np.random.Generator, start: np.ndarray, chunk: int = 250) -> np.ndarray:
    """Scores of ``n_boot`` resamples: raters drawn with replacement, and images too when given (a
    cell (rater, image) then counts w_rater * v_image times). Counts of a replicate are weighted sums
    of the per-cell matrices; the prior uses the full data's comparison graph, so every replicate
    keeps the components of the full data."""
    n_raters = rater_of.max() + 1
    n_images = 0 if image_of is None else image_of.max() + 1
    out = np.empty((n_boot, counts.shape[1]))
    for lo in range(0, n_boot, chunk):
        b = min(chunk, n_boot - lo)
        w = rng.multinomial(n_raters, np.full(n_raters, 1.0 / n_raters), size=b).astype(float)
        weight = w[:, rater_of]
        if image_of is not None:
            v = rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=b).astype(float)
            weight = weight * v[:, image_of]
        wins = np.einsum("bu,uij->bij", weight, counts) + (prior / 2.0) * compared
        out[lo:lo + b] = _newton(model, wins, label, start=np.tile(start, (b, 1)))
    return out


def _scale_rows(rows: pd.DataFrame, methods: list, *, pooled: bool, prior: float, n_boot: int, confidence: float,
                rng: np.random.Generator) -> pd.DataFrame:
    wins = win_matrix(rows, methods)
    units = ["rater_id", "image"] if pooled else ["rater_id"]
    counts, keys = pair_counts(rows, methods, units)
    rater_codes = pd.Index(sorted({k[0] for k in keys}, key=str))
    rater_of = rater_codes.get_indexer([k[0] for k in keys])
    image_of = None
    if pooled:
        image_codes = pd.Index(sorted({k[1] for k in keys}, key=str))
        image_of = image_codes.get_indexer([k[1] for k in keys])
    w = wins.to_numpy()
    compared = ((w + w.T) > 0).astype(float)
    out = {"method": methods, "n": (w + w.T).sum(axis=1).astype(int)}
    for model in MODELS:
        fit = fit_scale(wins, model, prior=prior)
        out[model] = fit.scores
        out[f"{model}_se"] = fit.se
        out["component"] = fit.component
        if n_boot:
            reps = _bootstrap_scores(model, counts, rater_of, image_of, compared, fit.component, prior, n_boot,
                                     rng, fit.scores)
            out[f"{model}_ci_low"], out[f"{model}_ci_high"] = percentile_interval(reps, confidence)
    frame = pd.DataFrame(out)
    frame["raters"] = len(rater_codes)
    return frame


def scale_per_dataset(judgments: pd.DataFrame, *, methods: Sequence[str] | None = None, prior: float = DEFAULT_PRIOR,
                      n_boot: int = 2000, confidence: float = 0.95, seed: int | None = 0) -> pd.DataFrame:
    """Thurstone (JOD) and Bradley-Terry scales per dataset, pooling its images, with intervals from a
    bootstrap over raters and images (two-way: they generalise to other raters and other images of
    the kind; the two-way bootstrap counts a cell's own noise twice, so it errs on the wide side).

    Columns: ``dataset, method, n, thurstone, thurstone_se, thurstone_ci_low, thurstone_ci_high, bt,
    bt_se, bt_ci_low, bt_ci_high, component, raters``. ``*_se`` is the Fisher standard error, which
    treats judgments as independent: valid for these raters on these images only.
    """
    rows = test_judgments(judgments)
    frames = []
    for k, (dataset, part) in enumerate(rows.groupby("dataset", sort=False)):
        names = ordered(pd.concat([part["method_a"], part["method_b"]]), methods)
        rng = np.random.default_rng(None if seed is None else [seed, k])
        frame = _scale_rows(part, names, pooled=True, prior=prior, n_boot=n_boot, confidence=confidence, rng=rng)
        frame.insert(0, "dataset", dataset)
        frames.append(frame)
    return _ordered_columns(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(), n_boot)


def scale_per_image(judgments: pd.DataFrame, *, methods: Sequence[str] | None = None, prior: float = DEFAULT_PRIOR,
                    n_boot: int = 0, confidence: float = 0.95, seed: int | None = 0) -> pd.DataFrame:
    """Per image: the Thurstone and Bradley-Terry scales with Fisher standard errors (and, with
    ``n_boot``, percentile intervals from a bootstrap over raters)."""
    rows = test_judgments(judgments)
    frames = []
    for k, ((dataset, image), part) in enumerate(rows.groupby(["dataset", "image"], sort=False)):
        names = ordered(pd.concat([part["method_a"], part["method_b"]]), methods)
        rng = np.random.default_rng(None if seed is None else [seed, k])
        frame = _scale_rows(part, names, pooled=False, prior=prior, n_boot=n_boot, confidence=confidence, rng=rng)
        frame.insert(0, "image", image)
        frame.insert(0, "dataset", dataset)
        frames.append(frame)
    return _ordered_columns(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(), n_boot)


def _ordered_columns(frame: pd.DataFrame, n_boot: int) -> pd.DataFrame:
    head = [c for c in ("dataset", "image") if c in frame.columns]
    cols = head + ["method", "n"]
    for model in MODELS:
        cols += [model, f"{model}_se"] + ([f"{model}_ci_low", f"{model}_ci_high"] if n_boot else [])
    cols += ["component", "raters"]
    return frame.reindex(columns=cols)
