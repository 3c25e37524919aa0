//! Maximum coverage: which candidate sites cover the most unserved demand. Lazy greedy, then
//! a best-exchange local search (one sweep over the reach lists prices every exchange), then
//! simulated annealing over exchanges of a site for one nearby, then the local search again;
//! seeded, so that equal inputs give equal plans. [`upper_bound`] proves how far from the
//! optimum a choice can be; [`exact`] solves small instances for the tests.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::Progress;

/// Reach-list entries the annealing may read, which bounds its time whatever the city: about
/// 4 s on the benchmark's densest city (8,000 points, 800 m, 100 sites) on this project's
/// 2-core machine. `fleet-sim bench planner` chose it (BENCHMARKS.md).
const READS: f64 = 2e9;

/// Annealing moves per candidate at most: small instances need few.
const MOVES_PER_CANDIDATE: usize = 2_000;

/// The annealing's first temperature, as a share of the mean weight a chosen site covers;
/// it cools geometrically to a thousandth of that.
const HEAT: f64 = 0.1;

/// Maximum coverage: choose at most `k` of `sets` (each a list of element indices) to
/// maximise the weight of elements covered, elements in `pre` already covered. `cost`
/// and `budget` bound the sum of chosen costs.
pub fn max_coverage(
    sets: &[Vec<usize>],
    weights: &[f64],
    pre: &[bool],
    k: usize,
    cost: &[u32],
    budget: Option<u32>,
) -> Vec<usize> {
    max_coverage_with(sets, weights, pre, k, cost, budget, &mut |_| {})
}

/// [`max_coverage`], telling `progress` what it does (a city takes seconds).
pub fn max_coverage_with(
    sets: &[Vec<usize>],
    weights: &[f64],
    pre: &[bool],
    k: usize,
    cost: &[u32],
    budget: Option<u32>,
    progress: &mut dyn FnMut(Progress),
) -> Vec<usize> {
    let mut s = Search::new(sets, weights, pre, cost, budget, k);
    s.greedy();
    progress(Progress::Greedy { covered: s.value });
    s.local_search();
    let entries: usize = s.sets.iter().map(Vec::len).sum();
    let mean = entries as f64 / s.sets.len().max(1) as f64;
    let moves = ((READS / (mean + 8.0)) as usize).min(MOVES_PER_CANDIDATE * s.sets.len());
    let t0 = HEAT * s.value / s.chosen.len().max(1) as f64;
    let (_, best) = s.anneal(&mut SplitMix(0x5eed_1ca7_10c4_e125), moves, t0, progress);
    for j in s.chosen.clone() {
        s.remove(j);
    }
    for j in best {
        s.add(j);
    }
    s.local_search();
    s.chosen
}

/// A small deterministic generator (SplitMix64): a plan must repeat from run to run.
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z % n as u64) as usize
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.below(1 << 53) as f64 / (1u64 << 53) as f64
    }
}

/// A choice of sets and what it covers, changed one set at a time.
struct Search {
    /// Each set's members that still matter (weight above 0, not covered before), once each.
    sets: Vec<Vec<u32>>,
    w: Vec<f64>,
    cost: Vec<u64>,
    budget: Option<u64>,
    k: usize,
    /// Chosen sets covering each element, and the sum of their indices: where the count is
    /// 1 the sum names the one set that covers it.
    count: Vec<u32>,
    owner: Vec<u64>,
    /// For each chosen set, the weight it alone covers (what taking it out would lose).
    loss: Vec<f64>,
    chosen: Vec<usize>,
    /// Position in `chosen`, or `usize::MAX`.
    pos: Vec<usize>,
    spent: u64,
    value: f64,
    /// Improvements smaller than this are rounding, not progress.
    eps: f64,
}

/// The best exchange a sweep found: take `out` (or nothing) out and put `inn` in.
struct Move {
    out: Option<usize>,
    inn: usize,
    delta: f64,
}

impl Search {
    fn new(
        sets: &[Vec<usize>],
        weights: &[f64],
        pre: &[bool],
        cost: &[u32],
        budget: Option<u32>,
        k: usize,
    ) -> Search {
        let (w, sets) = what_matters(sets, weights, pre);
        let total: f64 = w.iter().sum();
        Search {
            eps: total * 1e-12,
            count: vec![0; w.len()],
            owner: vec![0; w.len()],
            pos: vec![usize::MAX; sets.len()],
            loss: vec![0.0; sets.len()],
            sets,
            w,
            cost: cost.iter().map(|&c| u64::from(c)).collect(),
            budget: budget.map(u64::from),
            k,
            chosen: Vec::new(),
            spent: 0,
            value: 0.0,
        }
    }

    fn fits(&self, spent: u64) -> bool {
        self.budget.is_none_or(|b| spent <= b)
    }

    fn add(&mut self, j: usize) {
        let mut own = 0.0;
        for &i in &self.sets[j] {
            let i = i as usize;
            match self.count[i] {
                0 => {
                    self.value += self.w[i];
                    own += self.w[i];
                }
                1 => self.loss[self.owner[i] as usize] -= self.w[i],
                _ => {}
            }
            self.count[i] += 1;
            self.owner[i] += j as u64;
        }
        self.loss[j] = own;
        self.pos[j] = self.chosen.len();
        self.chosen.push(j);
        self.spent += self.cost[j];
    }

    fn remove(&mut self, j: usize) {
        for &i in &self.sets[j] {
            let i = i as usize;
            self.count[i] -= 1;
            self.owner[i] -= j as u64;
            match self.count[i] {
                0 => self.value -= self.w[i],
                1 => self.loss[self.owner[i] as usize] += self.w[i],
                _ => {}
            }
        }
        let p = self.pos[j];
        self.chosen.swap_remove(p);
        if let Some(&moved) = self.chosen.get(p) {
            self.pos[moved] = p;
        }
        self.pos[j] = usize::MAX;
        self.spent -= self.cost[j];
    }

    /// Simulated annealing over exchanges of a chosen site for a candidate near it (one that
    /// covers a point the chosen one covers) or, one time in ten, a candidate of a point
    /// anywhere; a worse exchange is taken with probability e^(Δ/t). Returns the best seen.
    /// Swap local search alone stops where moving one site cannot help but moving two
    /// would; at 8,000 points it stayed 0.5% below what annealing finds in the same time.
    fn anneal(
        &mut self,
        rng: &mut SplitMix,
        moves: usize,
        t0: f64,
        progress: &mut dyn FnMut(Progress),
    ) -> (f64, Vec<usize>) {
        let mut best = (self.value, self.chosen.clone());
        if self.chosen.is_empty() || moves == 0 {
            return best;
        }
        let mut by: Vec<Vec<u32>> = vec![Vec::new(); self.w.len()];
        for (j, set) in self.sets.iter().enumerate() {
            for &i in set {
                by[i as usize].push(j as u32);
            }
        }
        let cool = 1e-3f64.powf(1.0 / moves as f64);
        let mut t = t0;
        let tell = (moves / 16).max(1);
        for m in 0..moves {
            t *= cool;
            if m % tell == 0 {
                progress(Progress::Search {
                    done: m,
                    of: moves,
                    best: best.0,
                });
            }
            let s = self.chosen[rng.below(self.chosen.len())];
            let c = if rng.below(10) == 0 || self.sets[s].is_empty() {
                let i = rng.below(by.len());
                if by[i].is_empty() {
                    continue;
                }
                by[i][rng.below(by[i].len())] as usize
            } else {
                let i = self.sets[s][rng.below(self.sets[s].len())] as usize;
                by[i][rng.below(by[i].len())] as usize
            };
            if self.pos[c] != usize::MAX || !self.fits(self.spent - self.cost[s] + self.cost[c]) {
                continue;
            }
            let d = self.exchange(s, c);
            if d >= 0.0 || rng.unit() < (d / t).exp() {
                self.remove(s);
                self.add(c);
                if self.value > best.0 + self.eps {
                    best = (self.value, self.chosen.clone());
                }
            }
        }
        best
    }

    /// What exchanging chosen `s` for unchosen `c` would change, without making it: `s`
    /// takes away what only it covers, `c` brings what nothing else would then cover.
    fn exchange(&self, s: usize, c: usize) -> f64 {
        let mut d = -self.loss[s];
        for &i in &self.sets[c] {
            let i = i as usize;
            match self.count[i] {
                0 => d += self.w[i],
                1 if self.owner[i] == s as u64 => d += self.w[i],
                _ => {}
            }
        }
        d
    }

    fn gain(&self, j: usize) -> f64 {
        self.sets[j]
            .iter()
            .filter(|&&i| self.count[i as usize] == 0)
            .map(|&i| self.w[i as usize])
            .sum()
    }

    /// Fills the choice up to `k` by lazy greedy.
    fn greedy(&mut self) {
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
        let mut heap: BinaryHeap<Entry> = (0..self.sets.len())
            .filter(|&j| self.pos[j] == usize::MAX)
            .map(|j| Entry(self.gain(j), j))
            .collect();
        while self.chosen.len() < self.k {
            let Some(Entry(bound, j)) = heap.pop() else {
                break;
            };
            if bound <= self.eps {
                break;
            }
            // Gains only shrink as sets are chosen: a recomputed gain still at the top is the
            // true best (lazy evaluation).
            let g = self.gain(j);
            if heap.peek().is_some_and(|top| top.0 > g) {
                heap.push(Entry(g, j));
                continue;
            }
            if g <= self.eps || !self.fits(self.spent + self.cost[j]) {
                continue;
            }
            self.add(j);
        }
    }

    /// Best exchanges until none improves the covered weight.
    fn local_search(&mut self) {
        let mut extra = vec![0.0; self.k.max(1)];
        let mut touched: Vec<usize> = Vec::new();
        // Each exchange improves by more than eps: this ends, the cap only guards rounding.
        for _ in 0..100_000 {
            match self.best_move(&mut extra, &mut touched) {
                Some(m) if m.delta > self.eps => {
                    if let Some(out) = m.out {
                        self.remove(out);
                    }
                    self.add(m.inn);
                }
                _ => break,
            }
        }
    }

    /// One sweep over every set not chosen: the best add (while fewer than `k` are chosen)
    /// or exchange. Taking `s` out loses `loss[s]` (what only `s` covers); putting `c` in
    /// gains what no chosen set covers plus what only `s` covered among `c`'s members.
    fn best_move(&self, extra: &mut [f64], touched: &mut Vec<usize>) -> Option<Move> {
        let loss: Vec<f64> = self.chosen.iter().map(|&s| self.loss[s]).collect();
        let mut by_loss: Vec<usize> = (0..self.chosen.len()).collect();
        by_loss.sort_by(|&a, &b| loss[a].total_cmp(&loss[b]).then(a.cmp(&b)));
        let mut best: Option<Move> = None;
        let better = |best: &Option<Move>, d: f64| best.as_ref().is_none_or(|b| d > b.delta);
        for c in 0..self.sets.len() {
            if self.pos[c] != usize::MAX {
                continue;
            }
            let mut gain = 0.0;
            for &i in &self.sets[c] {
                let i = i as usize;
                match self.count[i] {
                    0 => gain += self.w[i],
                    1 => {
                        let p = self.pos[self.owner[i] as usize];
                        if extra[p] == 0.0 {
                            touched.push(p);
                        }
                        extra[p] += self.w[i];
                    }
                    _ => {}
                }
            }
            if self.chosen.len() < self.k
                && self.fits(self.spent + self.cost[c])
                && better(&best, gain)
            {
                best = Some(Move {
                    out: None,
                    inn: c,
                    delta: gain,
                });
            }
            for &p in touched.iter() {
                let d = gain - loss[p] + extra[p];
                let s = self.chosen[p];
                if better(&best, d) && self.fits(self.spent - self.cost[s] + self.cost[c]) {
                    best = Some(Move {
                        out: Some(s),
                        inn: c,
                        delta: d,
                    });
                }
            }
            // Among the sets `c` shares nothing unique with, the one losing least (none can
            // do better than the least loss of all).
            let least = by_loss.first().map_or(0.0, |&p| loss[p]);
            if better(&best, gain - least) {
                for &p in &by_loss {
                    if extra[p] != 0.0 {
                        continue;
                    }
                    let s = self.chosen[p];
                    if !self.fits(self.spent - self.cost[s] + self.cost[c]) {
                        continue;
                    }
                    let d = gain - loss[p];
                    if better(&best, d) {
                        best = Some(Move {
                            out: Some(s),
                            inn: c,
                            delta: d,
                        });
                    }
                    break;
                }
            }
            for p in touched.drain(..) {
                extra[p] = 0.0;
            }
        }
        best
    }
}

/// The weights that count (none where covered before, none below 0) and each set's members
/// that carry one, once each: both the search and the bound work on these.
fn what_matters(sets: &[Vec<usize>], weights: &[f64], pre: &[bool]) -> (Vec<f64>, Vec<Vec<u32>>) {
    let w: Vec<f64> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| if pre[i] { 0.0 } else { w.max(0.0) })
        .collect();
    let sets = sets
        .iter()
        .map(|s| {
            let mut s: Vec<u32> = s
                .iter()
                .filter(|&&i| w[i] > 0.0)
                .map(|&i| i as u32)
                .collect();
            s.sort_unstable();
            s.dedup();
            s
        })
        .collect();
    (w, sets)
}

/// A proven upper bound on the weight [`max_coverage`] can cover (beyond `pre`) with `k`
/// sets, budget aside: the Lagrangian relaxation of the coverage constraints, tightened by
/// subgradient steps. For any multipliers λ ≥ 0, Σᵢ max(0, wᵢ − λᵢ) plus the `k` largest
/// Σ_{i∈Sⱼ} λᵢ is at least the optimum; the best of `rounds` steps is returned.
pub fn upper_bound(
    sets: &[Vec<usize>],
    weights: &[f64],
    pre: &[bool],
    k: usize,
    lower: f64,
    rounds: usize,
) -> f64 {
    let (w, sets) = what_matters(sets, weights, pre);
    // Every element covered, or the `k` largest sets' weights, bound the optimum already.
    let total: f64 = w.iter().sum();
    let mut lambda: Vec<f64> = w.iter().map(|&w| w * 0.3).collect();
    let mut best = total;
    let mut theta = 2.0;
    let mut since = 0;
    let mut price = vec![0.0f64; sets.len()];
    let mut order: Vec<usize> = (0..sets.len()).collect();
    let mut hits = vec![0i32; w.len()];
    for _ in 0..rounds {
        for (j, s) in sets.iter().enumerate() {
            price[j] = s.iter().map(|&i| lambda[i as usize]).sum();
        }
        let top = k.min(sets.len());
        if top < sets.len() {
            order.select_nth_unstable_by(top, |&a, &b| price[b].total_cmp(&price[a]));
        }
        let mut value: f64 = order[..top].iter().map(|&j| price[j]).sum();
        value += w
            .iter()
            .zip(&lambda)
            .map(|(&w, &l)| (w - l).max(0.0))
            .sum::<f64>();
        if value < best - 1e-9 * total {
            best = value;
            since = 0;
        } else {
            since += 1;
            // Halving sooner stopped 0.3% above the LP optimum at 5,000 points; 300 steps
            // without a better bound come within 0.02% of it (CBC's LP, BENCHMARKS.md).
            if since >= 300 {
                theta /= 2.0;
                since = 0;
            }
        }
        if theta < 1e-6 || best <= lower {
            break;
        }
        // Subgradient: how often each element is covered by the chosen sets, less whether
        // the relaxation counts it.
        hits.iter_mut().for_each(|h| *h = 0);
        for &j in &order[..top] {
            for &i in &sets[j] {
                hits[i as usize] += 1;
            }
        }
        let g: Vec<f64> = (0..w.len())
            .map(|i| f64::from(hits[i]) - if w[i] > lambda[i] { 1.0 } else { 0.0 })
            .collect();
        let norm: f64 = g.iter().map(|g| g * g).sum();
        if norm == 0.0 {
            break;
        }
        let step = theta * (value - lower).max(1e-9 * total) / norm;
        for i in 0..w.len() {
            lambda[i] = (lambda[i] - step * g[i]).max(0.0);
        }
    }
    best
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
