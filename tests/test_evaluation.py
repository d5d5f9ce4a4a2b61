"""coursekit.retrieval.evaluation (stage 07) against hand-computed cases, two brute-force oracles written
here (the precision-recall curve's trapezoids, and the Oxford ``compute_ap.cpp`` loop), numpy's argsort
and properties of the measure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coursekit.retrieval import evaluation as E

# -- oracles, written from the definitions ---------------------------------------------------------


def pr_curve_ap(ranked, ok, junk=()) -> float:
    """The area under the precision-recall curve by trapezoids between consecutive cut-offs, junk
    deleted from the list first; the precision at cut-off 0 is 1."""
    ok, junk = set(ok), set(junk)
    kept = [i for i in ranked if i not in junk]
    recall, precision, hits, area = 0.0, 1.0, 0, 0.0
    for n, item in enumerate(kept, start=1):
        hits += item in ok
        new_recall, new_precision = hits / len(ok), hits / n
        area += (new_recall - recall) * (precision + new_precision) / 2
        recall, precision = new_recall, new_precision
    return area


def oxford_cpp_ap(ranked, ok, junk=()) -> float:
    """The Oxford buildings' compute_ap.cpp, re-expressed: old_precision starts at 1, junk is skipped,
    ``j`` counts the non-junk images seen."""
    ok, junk = set(ok), set(junk)
    old_recall, old_precision, ap, intersect, j = 0.0, 1.0, 0.0, 0, 0
    for item in ranked:
        if item in junk:
            continue
        if item in ok:
            intersect += 1
        recall = intersect / len(ok)
        precision = intersect / (j + 1.0)
        ap += (recall - old_recall) * ((old_precision + precision) / 2.0)
        old_recall, old_precision = recall, precision
        j += 1
    return ap


def capped_precision(ranked, ok, junk, k) -> float:
    """revisitop's mP@k for one query, from its definition: junk deleted, kq = min(last positive's
    1-based rank, k), the share of the first kq places that are positives."""
    kept = [i for i in ranked if i not in set(junk)]
    ranks = [n for n, item in enumerate(kept, start=1) if item in set(ok)]
    if not ranks:
        return 0.0
    kq = min(max(ranks), k)
    return sum(r <= kq for r in ranks) / kq


def non_interpolated_ap(ranked, ok) -> float:
    """scikit-learn's (and TREC's) AP: the mean, over the positives, of the precision at each hit."""
    hits, total = 0, 0.0
    for n, item in enumerate(ranked, start=1):
        if item in set(ok):
            hits += 1
            total += hits / n
    return total / len(ok)


def random_cases(n_queries: int, n_database: int, seed: int):
    """Random permutations with random disjoint ok and junk sets (some ok empty, some junk empty)."""
    rng = np.random.default_rng(seed)
    ranks = np.stack([rng.permutation(n_database) for _ in range(n_queries)])
    gnd = []
    for _ in range(n_queries):
        ids = rng.permutation(n_database)
        n_ok = int(rng.integers(0, 12)) if rng.random() > 0.05 else 0
        n_junk = int(rng.integers(0, 10)) if rng.random() > 0.2 else 0
        gnd.append({"ok": ids[:n_ok], "junk": ids[n_ok:n_ok + n_junk]})
    return ranks, gnd


# -- the hand cases of the reference ---------------------------------------------------------------


def test_one_positive_in_second_place_has_ap_one_quarter_not_one_half():
    # the positive at 0-based position 1: p0 = 0/1, p1 = 1/2; the trapezoid (0 + 1/2) / 2 = 1/4
    assert E.average_precision([7, 3, 5], ok=[3]) == pytest.approx(0.25, abs=1e-15)
    assert E.average_precisions(np.array([[7, 3, 5, 0, 1, 2, 4, 6]]), [{"ok": [3]}])[0] == pytest.approx(0.25, abs=1e-15)
    assert non_interpolated_ap([7, 3, 5], [3]) == 0.5  # what an sklearn-style AP would say


def test_the_revisited_toy_gives_e_m_h_025_0416667_025():
    # easy {0}, hard {1}, junk {2}, ranked [3, 1, 2, 0, 4]
    # easy:   junk {2, 1} deleted -> [3, 0, 4]: 0 at position 1 -> 1/4
    # medium: junk {2} deleted -> [3, 1, 0, 4]: (0 + 1/2)/2 + (1/2 + 2/3)/2 = 1/4 + 7/12 = 5/6, / 2 = 5/12
    # hard:   junk {2, 0} deleted -> [3, 1, 4]: 1/4
    gnd = [{"easy": [0], "hard": [1], "junk": [2], "bbx": [0.0, 0.0, 1.0, 1.0]}]
    results = E.revisited_map(np.array([[3, 1, 2, 0, 4]]), gnd)
    assert set(results) == {"easy", "medium", "hard"}
    for which, expected in (("easy", 0.25), ("medium", 5 / 12), ("hard", 0.25)):
        assert results[which].map == pytest.approx(expected, abs=1e-15), which
        assert results[which].aps.shape == (1,) and results[which].mp.shape == (3,)
    assert E.format_revisited(results) == "E 25.00  M 41.67  H 25.00"


def test_more_cases_by_hand():
    # ok {10, 11, 12, 13} (13 never retrieved), ranked [10, x, 11, x, 12]:
    # 1 + (1/2 + 2/3)/2 + (2/4 + 3/5)/2 = 1 + 7/12 + 11/20 = 32/15; / 4 = 8/15
    assert E.average_precision([10, 0, 11, 1, 12], ok=[10, 11, 12, 13]) == pytest.approx(8 / 15, abs=1e-15)
    # junk at the top is deleted: the positive is then first
    assert E.average_precision([5, 6, 1, 2], ok=[1], junk=[5, 6]) == pytest.approx(1.0, abs=1e-15)
    # junk between two positives: [1, j, 2] -> [1, 2], both first: 1
    assert E.average_precision([1, 9, 2, 3], ok=[1, 2], junk=[9]) == pytest.approx(1.0, abs=1e-15)
    # [x, a, b] with ok {a, b}: 1/4 + 7/12 = 5/6, / 2 = 5/12; the non-interpolated AP is (1/2 + 2/3)/2 = 7/12
    assert E.average_precision([0, 1, 2], ok=[1, 2]) == pytest.approx(5 / 12, abs=1e-15)
    assert non_interpolated_ap([0, 1, 2], [1, 2]) == pytest.approx(7 / 12)
    # no positive retrieved at all: 0; no positive at all: NaN
    assert E.average_precision([0, 1], ok=[5]) == 0.0
    assert np.isnan(E.average_precision([0, 1], ok=[]))
    ranks = np.array([[10, 0, 11, 1, 12, 13, 2, 3, 4, 5, 6, 7, 8, 9], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]])
    gnd = [{"ok": [10, 11, 12, 13]}, {"ok": [1, 2], "junk": [0]}]
    # the first: 13 now at position 5 -> 8/15 * 4 + (3/5 + 4/6)/2 = 32/15 + 19/30 = 83/30, / 4 = 83/120
    np.testing.assert_allclose(E.average_precisions(ranks, gnd), [83 / 120, 1.0], atol=1e-15)


def test_a_query_without_positives_is_left_out_of_the_means():
    ranks = np.array([[0, 1, 2, 3], [2, 1, 0, 3], [3, 2, 1, 0]])
    gnd = [{"ok": [], "junk": [1]}, {"ok": [1]}, {"ok": np.zeros(0, dtype=np.int64)}]
    result = E.mean_average_precision(ranks, gnd)
    assert np.isnan(result.aps[0]) and np.isnan(result.aps[2]) and result.aps[1] == pytest.approx(0.25)
    assert result.map == pytest.approx(0.25)  # the mean over the one valid query, not 0.25 / 3
    assert np.isnan(result.precisions[[0, 2]]).all()
    # query 1: the positive at rank 2: P@1 = 0/1; P@5 = P@10: capped at 2, 1/2
    np.testing.assert_allclose(result.precisions[1], [0.0, 0.5, 0.5])
    np.testing.assert_allclose(result.mp, [0.0, 0.5, 0.5])
    nothing = E.mean_average_precision(ranks[:1], gnd[:1])
    assert np.isnan(nothing.map) and np.isnan(nothing.mp).all()


def test_mean_precision_at_k_is_capped_at_the_last_positive():
    ranks = np.arange(20)[None, :].repeat(3, axis=0)
    # positives at ranks 1 and 2: P@5 = P@10 = 1 (not 2/5 and 2/10)
    # positives at ranks 1 and 7: P@1 = 1, P@5 = 1/5, P@10: capped at 7, 2/7
    # positive at rank 3 after a junk image at rank 1: junk-free rank 2: P@1 = 0, P@5 = P@10 = 1/2
    gnd = [{"ok": [0, 1]}, {"ok": [0, 6]}, {"ok": [2], "junk": [0]}]
    got = E.precisions_at_k(ranks, gnd, kappas=(1, 5, 10))
    np.testing.assert_allclose(got, [[1, 1, 1], [1, 1 / 5, 2 / 7], [0, 1 / 2, 1 / 2]], atol=1e-15)
    result = E.mean_average_precision(ranks, gnd, kappas=(1, 5, 10))
    np.testing.assert_allclose(result.precisions, got)
    np.testing.assert_allclose(result.mp, got.mean(axis=0))


# -- the oracles on random rankings -------------------------------------------------------------------


def test_vectorised_one_query_and_both_oracles_agree_on_2000_random_rankings_with_junk():
    ranks, gnd = random_cases(2000, 40, seed=0)
    vectorised = E.average_precisions(ranks, gnd)
    one_by_one = np.array([E.average_precision(r, g["ok"], g["junk"]) for r, g in zip(ranks, gnd)])
    empty = np.array([len(g["ok"]) == 0 for g in gnd])
    assert 50 < empty.sum() < 300  # both kinds of queries are there
    pr = np.array([pr_curve_ap(r, g["ok"], g["junk"]) if len(g["ok"]) else np.nan for r, g in zip(ranks, gnd)])
    cpp = np.array([oxford_cpp_ap(r, g["ok"], g["junk"]) if len(g["ok"]) else np.nan for r, g in zip(ranks, gnd)])
    for name, values in (("one query", one_by_one), ("PR-curve trapezoids", pr), ("compute_ap.cpp", cpp)):
        assert np.array_equal(np.isnan(values), empty), name
        np.testing.assert_allclose(vectorised[~empty], values[~empty], rtol=0, atol=1e-12, err_msg=name)
    # the measure is not the non-interpolated one: it differs on most queries, by up to tenths
    usual = np.array([non_interpolated_ap([i for i in r if i not in set(g["junk"])], g["ok"]) if len(g["ok"]) else np.nan
                      for r, g in zip(ranks, gnd)])
    differs = np.abs(usual[~empty] - vectorised[~empty]) > 1e-6
    assert differs.mean() > 0.9
    kappas = (1, 3, 5, 10, 100)
    precisions = E.precisions_at_k(ranks, gnd, kappas)
    oracle = np.array([[capped_precision(r, g["ok"], g["junk"], k) if len(g["ok"]) else np.nan for k in kappas]
                       for r, g in zip(ranks, gnd)])
    np.testing.assert_allclose(precisions, oracle, rtol=0, atol=1e-12)
    summary = E.mean_average_precision(ranks, gnd, kappas)
    assert summary.map == pytest.approx(cpp[~empty].mean(), abs=1e-12)
    np.testing.assert_allclose(summary.mp, oracle[~empty].mean(axis=0), atol=1e-12)


def test_rankings_cut_short_count_the_missing_positives_as_never_retrieved():
    ranks, gnd = random_cases(300, 50, seed=1)
    short = ranks[:, :20]
    got = E.average_precisions(short, gnd, n_database=50)
    oracle = np.array([pr_curve_ap(r, g["ok"], g["junk"]) if len(g["ok"]) else np.nan for r, g in zip(short, gnd)])
    np.testing.assert_allclose(got, oracle, rtol=0, atol=1e-12)
    full = E.average_precisions(ranks, gnd)
    valid = ~np.isnan(full)
    assert np.all(got[valid] <= full[valid] + 1e-15) and np.any(got[valid] < full[valid])
    precisions = E.precisions_at_k(short, gnd, (1, 5, 50), n_database=50)
    oracle = np.array([[capped_precision(r, g["ok"], g["junk"], k) if len(g["ok"]) else np.nan for k in (1, 5, 50)]
                       for r, g in zip(short, gnd)])
    np.testing.assert_allclose(precisions, oracle, rtol=0, atol=1e-12)


def test_revisited_map_is_compute_map_under_each_protocol_of_the_table():
    rng = np.random.default_rng(2)
    n_queries, n_database = 70, 120
    ranks = np.stack([rng.permutation(n_database) for _ in range(n_queries)])
    gnd = []
    for _ in range(n_queries):
        ids = rng.permutation(n_database)
        a, b, c = rng.integers(0, 10, size=3)
        gnd.append({"easy": ids[:a].tolist(), "hard": ids[a:a + b].tolist(), "junk": ids[a + b:a + b + c].tolist(),
                    "bbx": [1.0, 2.0, 30.0, 40.0]})
    results = E.revisited_map(ranks, gnd, kappas=(1, 5, 10))
    table = {"easy": (("easy",), ("junk", "hard")), "medium": (("easy", "hard"), ("junk",)),
             "hard": (("hard",), ("junk", "easy"))}
    for which, (ok_keys, junk_keys) in table.items():
        aps = []
        for r, g in zip(ranks, gnd):
            ok = [i for key in ok_keys for i in g[key]]
            junk = [i for key in junk_keys for i in g[key]]
            aps.append(oxford_cpp_ap(r, ok, junk) if ok else np.nan)
        aps = np.array(aps)
        np.testing.assert_allclose(results[which].aps, aps, rtol=0, atol=1e-12, err_msg=which)
        assert results[which].map == pytest.approx(np.nanmean(aps), abs=1e-12)
        converted = E.protocol(gnd, which)
        assert all(set(c["ok"]) == {i for key in ok_keys for i in g[key]} for c, g in zip(converted, gnd))
        assert all(set(c["junk"]) == {i for key in junk_keys for i in g[key]} for c, g in zip(converted, gnd))


def test_the_old_oxford_protocol_merges_good_and_ok():
    gnd = [{"good": [1, 2], "ok": [3], "junk": [4], "bbx": [0, 0, 1, 1]}, {"ok": [5], "junk": []}]
    converted = E.oxford_protocol(gnd)
    assert [c["ok"].tolist() for c in converted] == [[1, 2, 3], [5]]
    assert [c["junk"].tolist() for c in converted] == [[4], []]
    # ranked [4, 0, 1, 2, 3, 5]: junk 4 deleted -> [0, 1, 2, 3, 5]: positives at 1, 2, 3:
    # (0 + 1/2)/2 + (1/2 + 2/3)/2 + (2/3 + 3/4)/2 = 1/4 + 7/12 + 17/24 = 37/24, / 3 = 37/72
    ap = E.average_precisions(np.array([[4, 0, 1, 2, 3, 5]]), converted[:1])[0]
    assert ap == pytest.approx(37 / 72, abs=1e-15)


# -- properties ----------------------------------------------------------------------------------


def test_properties_of_the_measure():
    rng = np.random.default_rng(3)
    ranks, gnd = random_cases(400, 30, seed=4)
    aps = E.average_precisions(ranks, gnd)
    valid = ~np.isnan(aps)
    assert np.all((aps[valid] >= 0) & (aps[valid] <= 1))
    # every positive ahead of every other non-junk image: AP 1, wherever the junk sits
    best = []
    for g in gnd:
        rest = [i for i in range(30) if i not in set(g["ok"]) and i not in set(g["junk"])]
        order = list(g["ok"]) + rest
        for j in g["junk"]:
            order.insert(int(rng.integers(0, len(order) + 1)), int(j))
        best.append(order)
    best_aps = E.average_precisions(np.array(best), gnd)
    np.testing.assert_allclose(best_aps[valid], 1.0, atol=1e-15)
    # moving a junk image elsewhere changes nothing
    moved = []
    for r, g in zip(ranks, gnd):
        r = list(r)
        if len(g["junk"]):
            j = int(g["junk"][0])
            r.remove(j)
            r.insert(int(rng.integers(0, len(r) + 1)), j)
        moved.append(r)
    np.testing.assert_allclose(E.average_precisions(np.array(moved), gnd)[valid], aps[valid], atol=1e-15)
    # swapping a positive with the negative just above it never lowers the AP, and raises it
    raised = 0
    for r, g in zip(ranks, gnd):
        labels = [1 if i in set(g["ok"]) else 0 for i in r if i not in set(g["junk"])]
        if 1 not in labels:
            continue
        kept = [i for i in r if i not in set(g["junk"])]
        spots = [n for n in range(1, len(kept)) if labels[n] == 1 and labels[n - 1] == 0]
        if not spots:
            continue
        n = spots[0]
        better = kept[:n - 1] + [kept[n], kept[n - 1]] + kept[n + 1:]
        before = E.average_precision(kept, g["ok"])
        after = E.average_precision(better, g["ok"])
        assert after > before
        raised += 1
    assert raised > 100


# -- rankings ------------------------------------------------------------------------------------------


def unit_rows(n, d, seed):
    x = np.random.default_rng(seed).normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_ranking_is_numpys_argsort_of_the_inner_products():
    q, db = unit_rows(37, 16, 5), unit_rows(501, 16, 6)
    expected = np.argsort(-(q @ db.T), axis=1, kind="stable")
    for chunk in (None, 1, 10, 37, 1000):
        got = E.ranking(torch.from_numpy(q), torch.from_numpy(db), chunk=chunk)
        assert got.dtype == torch.int64 and got.shape == (37, 501)
        np.testing.assert_array_equal(got.numpy(), expected, err_msg=f"chunk={chunk}")
        top = E.ranking(torch.from_numpy(q), torch.from_numpy(db), k=9, chunk=chunk)
        np.testing.assert_array_equal(top.numpy(), expected[:, :9], err_msg=f"k=9, chunk={chunk}")
    np.testing.assert_array_equal(E.ranking(q, db).numpy(), expected)  # numpy arrays are accepted
    # float32 descriptors, scored in float32: the same order where the gaps exceed float32's rounding
    q, db = q[:5], db[:40]
    assert np.diff(np.sort(-(q @ db.T), axis=1), axis=1).min() > 1e-5
    np.testing.assert_array_equal(E.ranking(torch.from_numpy(q).float(), torch.from_numpy(db).float()).numpy(),
                                  np.argsort(-(q @ db.T), axis=1))


def test_ranking_breaks_ties_by_ascending_database_id():
    # small multiples of 1/8, so that every dot product is exact whatever the BLAS's order of summation: the
    # repeated rows tie exactly (unit rows made ties that differed in the last bit with some BLAS builds)
    db = np.random.default_rng(7).integers(-4, 5, (6, 4)) / 8.0
    db = np.concatenate([db, db[[2, 2, 0]]])  # ids 6, 7 tie with 2; id 8 with 0
    q = np.random.default_rng(8).integers(-4, 5, (5, 4)) / 8.0
    expected = np.argsort(-(q @ db.T), axis=1, kind="stable")
    np.testing.assert_array_equal(E.ranking(q, db).numpy(), expected)
    full = E.ranking(q, db).numpy()
    for row in full:
        where = {i: n for n, i in enumerate(row)}
        assert where[2] < where[6] < where[7] and where[0] < where[8]
    top = E.ranking(q, db, k=9).numpy()  # k = N: every tie inside the cut
    np.testing.assert_array_equal(top, expected)


def test_ranking_then_evaluation_end_to_end():
    q, db = unit_rows(8, 6, 9), unit_rows(60, 6, 10)
    ranks = E.ranking(q, db)
    gnd = [{"ok": list(range(i, i + 5)), "junk": [50 + i]} for i in range(8)]
    expected = [oxford_cpp_ap(np.argsort(-(q[i] @ db.T), kind="stable"), g["ok"], g["junk"]) for i, g in enumerate(gnd)]
    np.testing.assert_allclose(E.average_precisions(ranks, gnd), expected, atol=1e-12)


@pytest.mark.gpu
def test_ranking_and_evaluation_on_cuda_match_the_oracles():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    q, db = unit_rows(300, 64, 11), unit_rows(5000, 64, 12)
    expected = np.argsort(-(q @ db.T), axis=1, kind="stable")
    ranks = E.ranking(torch.from_numpy(q).cuda(), torch.from_numpy(db).cuda(), chunk=100)
    assert ranks.device.type == "cuda"
    np.testing.assert_array_equal(ranks.cpu().numpy(), expected)
    np.testing.assert_array_equal(E.ranking(torch.from_numpy(q).cuda(), torch.from_numpy(db).cuda(), k=50).cpu().numpy(),
                                  expected[:, :50])
    _, gnd = random_cases(300, 5000, seed=13)
    aps = E.average_precisions(ranks, gnd)
    oracle = np.array([oxford_cpp_ap(r, g["ok"], g["junk"]) if len(g["ok"]) else np.nan for r, g in zip(expected, gnd)])
    np.testing.assert_allclose(aps, oracle, rtol=0, atol=1e-12)


# -- errors --------------------------------------------------------------------------------------


def test_bad_rankings_are_refused_naming_the_argument():
    gnd = [{"ok": [0]}]
    with pytest.raises(ValueError, match=r"ranks must have shape \(Q, N\).*got \(5,\)"):
        E.average_precisions(np.arange(5), gnd)
    with pytest.raises(TypeError, match="ranks must hold integer database ids; got dtype torch.float64"):
        E.average_precisions(np.zeros((1, 5)), gnd)
    with pytest.raises(ValueError, match=r"ranks must hold database ids in \[0, 5\); got ids from 0 to 5"):
        E.average_precisions(np.array([[0, 1, 2, 3, 5]]), gnd)
    with pytest.raises(ValueError, match=r"ranks must hold database ids in \[0, 5\); got ids from -1"):
        E.mean_average_precision(np.array([[0, 1, 2, 3, -1]]), gnd)
    with pytest.raises(ValueError, match=r"pass n_database"):
        E.average_precisions(np.array([[0, 7]]), gnd)
    with pytest.raises(ValueError, match=r"ranks\[1\] lists database id 2 more than once"):
        E.average_precisions(np.array([[0, 1, 2], [2, 1, 2]]), gnd * 2)
    with pytest.raises(ValueError, match=r"n_database must be an integer >= the ranking length 3; got 2"):
        E.average_precisions(np.array([[0, 1, 2]]), gnd, n_database=2)


def test_bad_ground_truth_is_refused_naming_the_query():
    ranks = np.array([[0, 1, 2, 3], [3, 2, 1, 0]])
    with pytest.raises(ValueError, match=r"gnd must hold one dict per query, 2 for ranks of shape \(2, \.\.\.\); got 1"):
        E.average_precisions(ranks, [{"ok": [0]}])
    with pytest.raises(TypeError, match="gnd must be a list"):
        E.average_precisions(ranks, {"ok": [0]})
    with pytest.raises(TypeError, match=r"gnd\[1\] must be a dict with an 'ok' list \(and optionally 'junk'\); got list"):
        E.average_precisions(ranks, [{"ok": [0]}, [1]])
    with pytest.raises(ValueError, match=r"gnd\[1\] must be a dict with an 'ok' list.*protocol\(gnd, 'medium'\)"):
        E.average_precisions(ranks, [{"ok": [0]}, {"easy": [1], "hard": [], "junk": []}])
    with pytest.raises(ValueError, match=r"gnd\[1\]\['junk'\] must hold database ids in \[0, 4\); got ids from 2 to 9"):
        E.average_precisions(ranks, [{"ok": [0]}, {"ok": [1], "junk": [2, 9]}])
    with pytest.raises(ValueError, match=r"gnd\[0\] lists database id 1 more than once \(under 'ok', 'junk'\)"):
        E.average_precisions(ranks, [{"ok": [0, 1], "junk": [1]}, {"ok": [1]}])
    with pytest.raises(ValueError, match=r"gnd\[1\] lists database id 3 more than once \(under 'ok', 'ok'\)"):
        E.mean_average_precision(ranks, [{"ok": [0]}, {"ok": [3, 3]}])
    with pytest.raises(TypeError, match=r"gnd\[0\]\['ok'\] must hold integer database ids; got dtype float64"):
        E.average_precisions(ranks, [{"ok": [0.5]}, {"ok": [1]}])
    with pytest.raises(ValueError, match="ok and junk must not share ids"):
        E.average_precision([0, 1, 2], ok=[1], junk=[1, 2])
    with pytest.raises(ValueError, match=r"gnd\[1\] lists database id 2 more than once \(under 'easy', 'junk'\)"):
        E.revisited_map(ranks, [{"easy": [0], "hard": [1], "junk": []}, {"easy": [2], "hard": [], "junk": [2, 3]}])
    with pytest.raises(ValueError, match=r"gnd\[0\] must be a dict with 'easy', 'hard' and 'junk' lists; got one "
                                         r"with keys \['easy', 'junk'\]$"):
        E.revisited_map(ranks, [{"easy": [0], "junk": []}, {"easy": [2], "hard": [], "junk": []}])
    with pytest.raises(ValueError, match=r"gnd\[0\] has no 'hard' list"):
        E.protocol([{"easy": [0], "junk": []}], "medium")
    with pytest.raises(ValueError, match=r"which must be one of \('easy', 'medium', 'hard'\); got 'Medium'"):
        E.protocol([{"easy": [0], "hard": [], "junk": []}], "Medium")
    with pytest.raises(ValueError, match="kappas must be positive integers"):
        E.precisions_at_k(ranks, [{"ok": [0]}, {"ok": [1]}], kappas=(0, 5))
    with pytest.raises(ValueError, match=r"results must hold .* \['hard'\] missing"):
        E.format_revisited({"easy": None, "medium": None})


def test_bad_descriptors_are_refused_with_the_shapes():
    q, db = torch.zeros(3, 4), torch.zeros(10, 4)
    with pytest.raises(ValueError, match=r"queries \(Q, D\) and database \(N, D\) must share D; got \(3, 4\) and \(10, 5\)"):
        E.ranking(q, torch.zeros(10, 5))
    with pytest.raises(ValueError, match=r"database must have shape \(N, D\), one descriptor a row; got \(10,\)"):
        E.ranking(q, torch.zeros(10))
    with pytest.raises(TypeError, match="queries must hold floating-point descriptors; got dtype torch.int64"):
        E.ranking(torch.zeros(3, 4, dtype=torch.long), db)
    with pytest.raises(TypeError, match="queries must be a torch tensor or numpy array of shape \\(Q, D\\); got list"):
        E.ranking([[0.0] * 4], db)
    with pytest.raises(ValueError, match=r"k must be None \(the whole ranking\) or an integer in \[1, 10\]; got 11"):
        E.ranking(q, db, k=11)
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        E.ranking(q, db, chunk=0)
