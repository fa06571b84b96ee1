//! Optimal one-to-one assignment of tracks to detections on a sparse graph.
//!
//! Candidate pairs (IoU at least the matching threshold, same class) are few:
//! most tracks overlap one detection or none. The pairs are split into
//! connected components; a component with one pair is a match outright and
//! each larger one (objects crossing, a crowd) is solved exactly with the
//! Hungarian algorithm (shortest augmenting paths, O(n²m) on the component
//! only). The objective is the largest total weight (IoU); a row may stay
//! unmatched, which is modelled by one private dummy column per row.
//!
//! All buffers live in [`Assigner`] and are reused from frame to frame.
//! Results depend only on the order of rows and columns: ties go to the
//! lowest index, so the same input always gives the same matches.

/// Cost of a pair that is not a candidate: larger than any feasible total.
const FORBIDDEN: f64 = 1.0e9;

#[derive(Debug, Clone, Copy)]
struct Edge {
    root: u32,
    row: u32,
    col: u32,
    weight: f32,
}

/// A reusable solver: [`begin`](Self::begin), [`add`](Self::add) candidate
/// pairs, then [`solve`](Self::solve).
#[derive(Debug, Default)]
pub(crate) struct Assigner {
    rows: usize,
    edges: Vec<Edge>,
    parent: Vec<u32>,
    // One component at a time.
    comp_rows: Vec<u32>,
    comp_cols: Vec<u32>,
    local: Vec<u32>,
    cost: Vec<f64>,
    u: Vec<f64>,
    v: Vec<f64>,
    p: Vec<usize>,
    way: Vec<usize>,
    minv: Vec<f64>,
    used: Vec<bool>,
}

impl Assigner {
    /// Starts a problem with `rows` rows and `cols` columns and no pairs.
    pub(crate) fn begin(&mut self, rows: usize, cols: usize) {
        self.rows = rows;
        self.edges.clear();
        self.parent.clear();
        self.parent.extend(0..(rows + cols) as u32);
        self.local.clear();
        self.local.resize(rows + cols, u32::MAX);
    }

    /// Adds a candidate pair; `weight` must be in (0, 1] (an IoU).
    pub(crate) fn add(&mut self, row: usize, col: usize, weight: f32) {
        let (r, c) = (row as u32, (self.rows + col) as u32);
        let (a, b) = (self.find(r), self.find(c));
        if a != b {
            // Union by index keeps the result independent of edge order.
            let (lo, hi) = if a < b { (a, b) } else { (b, a) };
            self.parent[hi as usize] = lo;
        }
        self.edges.push(Edge {
            root: 0,
            row: row as u32,
            col: col as u32,
            weight,
        });
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let up = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = up;
            x = up;
        }
        x
    }

    /// Solves the problem; appends the matched `(row, col)` pairs to `out`,
    /// sorted by row.
    pub(crate) fn solve(&mut self, out: &mut Vec<(usize, usize)>) {
        let start = out.len();
        for i in 0..self.edges.len() {
            let r = self.edges[i].row;
            self.edges[i].root = self.find(r);
        }
        self.edges.sort_unstable_by_key(|e| (e.root, e.row, e.col));
        let mut begin = 0;
        while begin < self.edges.len() {
            let root = self.edges[begin].root;
            let mut end = begin + 1;
            while end < self.edges.len() && self.edges[end].root == root {
                end += 1;
            }
            if end - begin == 1 {
                let e = self.edges[begin];
                out.push((e.row as usize, e.col as usize));
            } else {
                self.solve_component(begin, end, out);
            }
            begin = end;
        }
        out[start..].sort_unstable();
    }

    /// Exact solution of the component made of `edges[begin..end]`.
    fn solve_component(&mut self, begin: usize, end: usize, out: &mut Vec<(usize, usize)>) {
        let rows = self.rows;
        self.comp_rows.clear();
        self.comp_cols.clear();
        for e in &self.edges[begin..end] {
            // Edges are sorted by row: equal rows are adjacent.
            if self.comp_rows.last() != Some(&e.row) {
                self.comp_rows.push(e.row);
            }
            self.comp_cols.push(e.col);
        }
        self.comp_cols.sort_unstable();
        self.comp_cols.dedup();
        for (i, &r) in self.comp_rows.iter().enumerate() {
            self.local[r as usize] = i as u32;
        }
        for (j, &c) in self.comp_cols.iter().enumerate() {
            self.local[rows + c as usize] = j as u32;
        }

        // n rows; m = real columns + one dummy ("unmatched") column per row.
        let n = self.comp_rows.len();
        let k = self.comp_cols.len();
        let m = k + n;
        self.cost.clear();
        self.cost.resize(n * m, FORBIDDEN);
        for i in 0..n {
            self.cost[i * m + k + i] = 1.0;
        }
        for e in &self.edges[begin..end] {
            let i = self.local[e.row as usize] as usize;
            let j = self.local[rows + e.col as usize] as usize;
            self.cost[i * m + j] = 1.0 - f64::from(e.weight);
        }

        self.hungarian(n, m);

        // p[j] is the 1-based row given column j (1-based), 0 if none.
        for j in 1..=k {
            let i = self.p[j];
            if i != 0 && self.cost[(i - 1) * m + (j - 1)] < FORBIDDEN {
                out.push((
                    self.comp_rows[i - 1] as usize,
                    self.comp_cols[j - 1] as usize,
                ));
            }
        }
        for &r in &self.comp_rows {
            self.local[r as usize] = u32::MAX;
        }
        for &c in &self.comp_cols {
            self.local[rows + c as usize] = u32::MAX;
        }
    }

    /// Minimum-cost assignment of every row of the `n × m` matrix `self.cost`
    /// (`n ≤ m`) by shortest augmenting paths with potentials; the result is
    /// left in `self.p`.
    fn hungarian(&mut self, n: usize, m: usize) {
        let Self {
            cost,
            u,
            v,
            p,
            way,
            minv,
            used,
            ..
        } = self;
        u.clear();
        u.resize(n + 1, 0.0);
        v.clear();
        v.resize(m + 1, 0.0);
        p.clear();
        p.resize(m + 1, 0);
        way.clear();
        way.resize(m + 1, 0);
        for i in 1..=n {
            p[0] = i;
            let mut j0 = 0;
            minv.clear();
            minv.resize(m + 1, f64::INFINITY);
            used.clear();
            used.resize(m + 1, false);
            loop {
                used[j0] = true;
                let i0 = p[j0];
                let row = &cost[(i0 - 1) * m..i0 * m];
                let mut delta = f64::INFINITY;
                let mut j1 = 0;
                for j in 1..=m {
                    if !used[j] {
                        let cur = row[j - 1] - u[i0] - v[j];
                        if cur < minv[j] {
                            minv[j] = cur;
                            way[j] = j0;
                        }
                        if minv[j] < delta {
                            delta = minv[j];
                            j1 = j;
                        }
                    }
                }
                for j in 0..=m {
                    if used[j] {
                        u[p[j]] += delta;
                        v[j] -= delta;
                    } else {
                        minv[j] -= delta;
                    }
                }
                j0 = j1;
                if p[j0] == 0 {
                    break;
                }
            }
            loop {
                let j1 = way[j0];
                p[j0] = p[j1];
                j0 = j1;
                if j0 == 0 {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rows: usize, cols: usize, pairs: &[(usize, usize, f32)]) -> Vec<(usize, usize)> {
        let mut a = Assigner::default();
        a.begin(rows, cols);
        for &(r, c, w) in pairs {
            a.add(r, c, w);
        }
        let mut out = Vec::new();
        a.solve(&mut out);
        out
    }

    /// Exhaustive maximum total weight, for checking the solver.
    fn brute(rows: usize, cols: usize, pairs: &[(usize, usize, f32)]) -> f64 {
        fn go(r: usize, rows: usize, taken: &mut Vec<bool>, w: &[Vec<f32>]) -> f64 {
            if r == rows {
                return 0.0;
            }
            let mut best = go(r + 1, rows, taken, w);
            for c in 0..taken.len() {
                if !taken[c] && w[r][c] > 0.0 {
                    taken[c] = true;
                    best = best.max(f64::from(w[r][c]) + go(r + 1, rows, taken, w));
                    taken[c] = false;
                }
            }
            best
        }
        let mut w = vec![vec![0.0f32; cols]; rows];
        for &(r, c, x) in pairs {
            w[r][c] = x;
        }
        go(0, rows, &mut vec![false; cols], &w)
    }

    #[test]
    fn prefers_the_larger_total_over_the_greedy_choice() {
        // Greedy takes (0,0)=0.9 and then nothing; optimal is 0.8 + 0.8.
        let got = run(2, 2, &[(0, 0, 0.9), (0, 1, 0.8), (1, 0, 0.8)]);
        assert_eq!(got, vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn leaves_rows_and_columns_without_candidates_unmatched() {
        let got = run(4, 3, &[(3, 0, 0.5), (1, 2, 0.3)]);
        assert_eq!(got, vec![(1, 2), (3, 0)]);
        assert!(run(3, 3, &[]).is_empty());
    }

    #[test]
    fn matches_exhaustive_search_on_random_problems() {
        let mut seed = 0x2545_f491_u32;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let mut a = Assigner::default();
        let mut out = Vec::new();
        for _ in 0..300 {
            let rows = 1 + (rnd() % 6) as usize;
            let cols = 1 + (rnd() % 6) as usize;
            let mut pairs = Vec::new();
            for r in 0..rows {
                for c in 0..cols {
                    if rnd() % 3 == 0 {
                        pairs.push((r, c, 0.2 + (rnd() % 800) as f32 / 1000.0));
                    }
                }
            }
            a.begin(rows, cols);
            for &(r, c, w) in &pairs {
                a.add(r, c, w);
            }
            out.clear();
            a.solve(&mut out);
            let mut seen_r = vec![false; rows];
            let mut seen_c = vec![false; cols];
            let mut total = 0.0f64;
            for &(r, c) in &out {
                assert!(!seen_r[r] && !seen_c[c], "one-to-one");
                seen_r[r] = true;
                seen_c[c] = true;
                let w = pairs
                    .iter()
                    .find(|p| p.0 == r && p.1 == c)
                    .expect("only candidate pairs are matched")
                    .2;
                total += f64::from(w);
            }
            let best = brute(rows, cols, &pairs);
            assert!(
                (total - best).abs() < 1e-4,
                "{total} vs {best} for {pairs:?}"
            );
        }
    }
}
