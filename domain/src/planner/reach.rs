//! Which demand points lie within walking distance of each place: a grid of cells at least one
//! radius wide, so a place measures only the points in its own and the eight neighbouring
//! cells (a city of 8,000 points against 8,000 candidates is 64 million distances otherwise).

use std::collections::HashMap;

use super::distance_m;

/// Metres per radian of the sphere [`distance_m`] measures on.
const R: f64 = 6_371_000.0;

/// For each of `places`, the indices (ascending) of `points` within `radius_m`, by
/// [`distance_m`]. Points and places are `(lat, lon)` in degrees.
pub fn within(points: &[(f64, f64)], places: &[(f64, f64)], radius_m: f64) -> Vec<Vec<usize>> {
    match Grid::new(points, places, radius_m) {
        Some(grid) => places
            .iter()
            .map(|&(lat, lon)| grid.near(points, lat, lon, radius_m))
            .collect(),
        // Near a pole a cell would wrap the globe: measure everything.
        None => places
            .iter()
            .map(|&(lat, lon)| {
                (0..points.len())
                    .filter(|&i| distance_m(lat, lon, points[i].0, points[i].1) <= radius_m)
                    .collect()
            })
            .collect(),
    }
}

struct Grid {
    /// Cell height and width, degrees.
    dlat: f64,
    dlon: f64,
    /// Cells around a parallel (the grid wraps at the antimeridian).
    cols: i64,
    cells: HashMap<(i64, i64), Vec<usize>>,
}

impl Grid {
    fn new(points: &[(f64, f64)], places: &[(f64, f64)], radius_m: f64) -> Option<Grid> {
        // Along a meridian a degree is R·π/180 metres, and no path between two latitudes is
        // shorter. Across meridians, the haversine gives d ≥ 2R·asin(cos φ · sin(Δλ/2)) for
        // the point nearest a pole, so cells that wide in longitude hold every point in reach.
        let angle = radius_m / R;
        let dlat = angle.to_degrees() * 1.000_001;
        let cos_min = points
            .iter()
            .chain(places)
            .map(|&(lat, _)| lat.to_radians().cos())
            .fold(1.0f64, f64::min);
        let s = (angle / 2.0).sin() / cos_min;
        if !(s.is_finite() && s < 1.0) {
            return None;
        }
        let want = (2.0 * s.asin()).to_degrees() * 1.000_001;
        let cols = (360.0 / want).floor() as i64;
        if cols < 3 {
            return None;
        }
        let dlon = 360.0 / cols as f64;
        let mut grid = Grid {
            dlat,
            dlon,
            cols,
            cells: HashMap::new(),
        };
        for (i, &(lat, lon)) in points.iter().enumerate() {
            let cell = grid.cell(lat, lon);
            grid.cells.entry(cell).or_default().push(i);
        }
        Some(grid)
    }

    fn cell(&self, lat: f64, lon: f64) -> (i64, i64) {
        (
            (lat / self.dlat).floor() as i64,
            (((lon + 180.0) / self.dlon).floor() as i64).rem_euclid(self.cols),
        )
    }

    fn near(&self, points: &[(f64, f64)], lat: f64, lon: f64, radius_m: f64) -> Vec<usize> {
        let (row, col) = self.cell(lat, lon);
        let mut out = Vec::new();
        for dr in -1..=1 {
            for dc in -1..=1 {
                let c = (col + dc).rem_euclid(self.cols);
                if let Some(cell) = self.cells.get(&(row + dr, c)) {
                    out.extend(
                        cell.iter().copied().filter(|&i| {
                            distance_m(lat, lon, points[i].0, points[i].1) <= radius_m
                        }),
                    );
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The grid finds exactly what measuring every pair finds, anywhere on the globe
        /// (the antimeridian and the poles included) and at any radius.
        #[test]
        fn the_grid_finds_what_every_pair_finds(
            lat in -89.9f64..89.9,
            lon in -180.0f64..180.0,
            spread in 0.001f64..3.0,
            radius in 10.0f64..50_000.0,
            offsets in proptest::collection::vec((-1.0f64..1.0, -1.0f64..1.0), 1..120),
        ) {
            let at = |(a, b): (f64, f64)| {
                let la = (lat + a * spread).clamp(-90.0, 90.0);
                let mut lo = lon + b * spread;
                if lo > 180.0 { lo -= 360.0 }
                if lo < -180.0 { lo += 360.0 }
                (la, lo)
            };
            let points: Vec<(f64, f64)> = offsets.iter().copied().map(at).collect();
            let places: Vec<(f64, f64)> = offsets.iter().rev().step_by(3).copied().map(at).collect();
            let got = within(&points, &places, radius);
            for (p, &(la, lo)) in places.iter().enumerate() {
                let all: Vec<usize> = (0..points.len())
                    .filter(|&i| distance_m(la, lo, points[i].0, points[i].1) <= radius)
                    .collect();
                prop_assert_eq!(&got[p], &all);
            }
        }
    }
}
