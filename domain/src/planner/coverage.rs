//! Maximum coverage: which candidate sites cover the most unserved demand (greedy with lazy
//! evaluation, then swaps), and an exact solver for small instances that the tests hold the
//! heuristic against.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Maximum coverage: choose at most `k` of `sets` (each a list of element indices) to
/// maximise the weight of elements covered, elements in `pre` already covered. `cost`
/// and `budget` bound the sum of chosen costs. Greedy with lazy evaluation, then swaps
/// while one improves the covered weight, from the plain start and from up to 32 forced
/// first picks; the best result wins.
pub fn max_coverage(
    sets: &[Vec<usize>],
    weights: &[f64],
    pre: &[bool],
    k: usize,
    cost: &[u32],
    budget: Option<u32>,
) -> Vec<usize> {
    // Each member once: a repeated index must not count its weight twice.
    let sets: Vec<Vec<usize>> = sets
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.sort_unstable();
            s.dedup();
            s
        })
        .collect();
    let value = |chosen: &[usize]| -> f64 {
        let mut covered = pre.to_vec();
        for &j in chosen {
            for &i in &sets[j] {
                covered[i] = true;
            }
        }
        (0..weights.len())
            .filter(|&i| covered[i] && !pre[i])
            .map(|i| weights[i])
            .sum()
    };
    // Multi-start: plain greedy, then greedy forced to open with each of the strongest
    // candidates. A swap local search cannot leave a greedy first pick that blocks a
    // better pair; starting elsewhere can. Bounded: at most 32 extra starts.
    let mut best = greedy_swap(&sets, weights, pre, k, cost, budget, None);
    let mut best_value = value(&best);
    if k > 1 {
        let mut first: Vec<(f64, usize)> = (0..sets.len())
            .map(|j| {
                let g = sets[j]
                    .iter()
                    .filter(|&&i| !pre[i])
                    .map(|&i| weights[i])
                    .sum();
                (g, j)
            })
            .collect();
        first.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        for &(g, j) in first.iter().take(32) {
            if g <= 0.0 || budget.is_some_and(|b| cost[j] > b) {
                continue;
            }
            let c = greedy_swap(&sets, weights, pre, k, cost, budget, Some(j));
            let v = value(&c);
            if v > best_value + 1e-9 {
                best = c;
                best_value = v;
            }
        }
    }
    best
}

/// Lazy greedy (optionally opening with `first`), then 1-swap local search.
fn greedy_swap(
    sets: &[Vec<usize>],
    weights: &[f64],
    pre: &[bool],
    k: usize,
    cost: &[u32],
    budget: Option<u32>,
    first: Option<usize>,
) -> Vec<usize> {
    let mut count: Vec<u32> = pre.iter().map(|c| u32::from(*c)).collect();
    let gain = |j: usize, count: &[u32]| -> f64 {
        sets[j]
            .iter()
            .filter(|&&i| count[i] == 0)
            .map(|&i| weights[i])
            .sum()
    };
    #[derive(PartialEq)]
    struct Entry(f64, usize);
    impl Eq for Entry {}
    impl PartialOrd for Entry {
        fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Entry {
        // Larger gain first; ties to the lower index, so results are deterministic.
        fn cmp(&self, o: &Self) -> Ordering {
            self.0.total_cmp(&o.0).then_with(|| o.1.cmp(&self.1))
        }
    }
    let mut heap: BinaryHeap<Entry> = (0..sets.len()).map(|j| Entry(gain(j, &count), j)).collect();
    let mut chosen = Vec::new();
    let mut spent = 0u32;
    if let Some(j) = first
        && k > 0
    {
        spent += cost[j];
        for &i in &sets[j] {
            count[i] += 1;
        }
        chosen.push(j);
    }
    while chosen.len() < k {
        let Some(Entry(bound, j)) = heap.pop() else {
            break;
        };
        if bound <= 0.0 {
            break;
        }
        // Gains only shrink as sets are chosen: a recomputed gain still at the top is the
        // true best (lazy evaluation).
        let g = gain(j, &count);
        if heap.peek().is_some_and(|top| top.0 > g) {
            heap.push(Entry(g, j));
            continue;
        }
        if g <= 0.0 {
            break;
        }
        if chosen.contains(&j) {
            continue;
        }
        if budget.is_some_and(|b| spent + cost[j] > b) {
            continue;
        }
        spent += cost[j];
        for &i in &sets[j] {
            count[i] += 1;
        }
        chosen.push(j);
    }
    // Local search: swap a chosen set for another while that covers more.
    let mut improved = true;
    let mut rounds = 0;
    while improved && rounds < 100 {
        improved = false;
        rounds += 1;
        'outer: for pos in 0..chosen.len() {
            let out = chosen[pos];
            let loss: f64 = sets[out]
                .iter()
                .filter(|&&i| count[i] == 1)
                .map(|&i| weights[i])
                .sum();
            for c in 0..sets.len() {
                if chosen.contains(&c) {
                    continue;
                }
                if budget.is_some_and(|b| spent - cost[out] + cost[c] > b) {
                    continue;
                }
                for &i in &sets[out] {
                    count[i] -= 1;
                }
                let g = gain(c, &count);
                if g > loss + 1e-9 {
                    for &i in &sets[c] {
                        count[i] += 1;
                    }
                    spent = spent - cost[out] + cost[c];
                    chosen[pos] = c;
                    improved = true;
                    continue 'outer;
                }
                for &i in &sets[out] {
                    count[i] += 1;
                }
            }
        }
    }
    chosen
}

/// The optimum of [`max_coverage`] (no budget) by trying every choice of `k` sets: for tests
/// and instances of a few dozen candidates.
pub fn exact(sets: &[Vec<usize>], weights: &[f64], pre: &[bool], k: usize) -> f64 {
    fn go(
        sets: &[Vec<usize>],
        weights: &[f64],
        count: &mut Vec<u32>,
        from: usize,
        left: usize,
        covered: f64,
        best: &mut f64,
    ) {
        *best = best.max(covered);
        if left == 0 {
            return;
        }
        for j in from..sets.len() {
            let mut add = 0.0;
            for &i in &sets[j] {
                if count[i] == 0 {
                    add += weights[i];
                }
                count[i] += 1;
            }
            go(sets, weights, count, j + 1, left - 1, covered + add, best);
            for &i in &sets[j] {
                count[i] -= 1;
            }
        }
    }
    let mut count: Vec<u32> = pre.iter().map(|c| u32::from(*c)).collect();
    let base: f64 = (0..weights.len())
        .filter(|&i| pre[i])
        .map(|i| weights[i])
        .sum();
    let mut best = base;
    go(sets, weights, &mut count, 0, k, base, &mut best);
    best - base
}
