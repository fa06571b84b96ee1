//! Whether a zone's polygon is a usable shape: no two corners in one place, no
//! edge crossing or touching another but its neighbours (corners listed in
//! order around the zone), and an area. Coordinates are fractions of the frame; the checks are pure.
//!
//! A polygon whose edges cross (a "bow tie", usually two corners swapped) or
//! that folds back along an edge has no clear inside: point-in-polygon tests give
//! answers the operator did not mean, so the config is refused instead.

/// Corners closer than this (a fraction of the frame) are the same point.
const SAME_POINT: f64 = 1e-9;
/// A zone smaller than this fraction of the frame has no area.
const MIN_AREA: f64 = 1e-6;

type Pt = [f64; 2];

fn sub(a: Pt, b: Pt) -> Pt {
    [a[0] - b[0], a[1] - b[1]]
}

fn cross(a: Pt, b: Pt) -> f64 {
    a[0] * b[1] - a[1] * b[0]
}

/// Which side of line `a`–`b` the point `p` is on: -1, 0 (on the line) or 1.
fn side(a: Pt, b: Pt, p: Pt) -> i8 {
    let c = cross(sub(b, a), sub(p, a));
    if c.abs() <= SAME_POINT {
        0
    } else if c > 0.0 {
        1
    } else {
        -1
    }
}

/// `p`, known to be on the line through `a` and `b`, lies within the segment.
fn within(a: Pt, b: Pt, p: Pt) -> bool {
    p[0] >= a[0].min(b[0]) - SAME_POINT
        && p[0] <= a[0].max(b[0]) + SAME_POINT
        && p[1] >= a[1].min(b[1]) - SAME_POINT
        && p[1] <= a[1].max(b[1]) + SAME_POINT
}

/// Segments `a`–`b` and `c`–`d` share at least one point.
fn touch(a: Pt, b: Pt, c: Pt, d: Pt) -> bool {
    let (s1, s2, s3, s4) = (side(a, b, c), side(a, b, d), side(c, d, a), side(c, d, b));
    if s1 * s2 < 0 && s3 * s4 < 0 {
        return true;
    }
    (s1 == 0 && within(a, b, c))
        || (s2 == 0 && within(a, b, d))
        || (s3 == 0 && within(c, d, a))
        || (s4 == 0 && within(c, d, b))
}

/// Twice the signed area (shoelace).
fn area2(p: &[Pt]) -> f64 {
    (0..p.len())
        .map(|i| cross(p[i], p[(i + 1) % p.len()]))
        .sum()
}

/// Why `p` (at least three corners, in 0..1) is not a usable zone, if it is not.
pub fn check(p: &[Pt]) -> Result<(), String> {
    let n = p.len();
    let edge = |i: usize| (p[i], p[(i + 1) % n]);
    for i in 0..n {
        let (a, b) = edge(i);
        if sub(b, a).iter().all(|v| v.abs() <= SAME_POINT) {
            return Err(format!(
                "corners {i} and {} are the same point {a:?}",
                (i + 1) % n
            ));
        }
    }
    for i in 0..n {
        for j in i + 2..n {
            if i == 0 && j == n - 1 {
                continue; // the last edge shares corner 0 with the first
            }
            let ((a, b), (c, d)) = (edge(i), edge(j));
            if touch(a, b, c, d) {
                return Err(format!(
                    "crosses itself: edge {i} ({a:?}→{b:?}) meets edge {j} ({c:?}→{d:?}); \
                     list the corners in order around the zone"
                ));
            }
        }
    }
    // Without crossings the shoelace area is the zone's area; a fold back along an
    // edge with nothing else (three corners) leaves none.
    if area2(p).abs() / 2.0 < MIN_AREA {
        return Err("has no area (its corners lie on one line)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let square = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
        let bow_tie = [[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]];
        let concave = [[0.0, 0.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0], [0.0, 1.0]];
        let line = [[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]];
        let repeated = [[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]];
        let spike = [[0.0, 0.0], [1.0, 0.0], [0.5, 0.0], [0.5, 1.0]];
        let touching = [
            [0.0, 0.0],
            [1.0, 0.0],
            [0.5, 0.5],
            [1.0, 1.0],
            [0.0, 1.0],
            [0.5, 0.5],
        ];
        let tiny = [[0.5, 0.5], [0.5001, 0.5], [0.5, 0.5001]];
        let triangle = [[0.1, 0.9], [0.9, 0.9], [0.5, 0.2]];
        for (name, poly, want) in [
            ("square", &square[..], None),
            ("triangle", &triangle[..], None),
            ("concave", &concave[..], None),
            ("bow tie", &bow_tie[..], Some("crosses itself")),
            ("corners on a line", &line[..], Some("no area")),
            ("a corner twice", &repeated[..], Some("same point")),
            (
                "a spike back along an edge",
                &spike[..],
                Some("crosses itself"),
            ),
            ("two corners meeting", &touching[..], Some("crosses itself")),
            ("smaller than a millionth", &tiny[..], Some("no area")),
        ] {
            match (check(poly), want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => assert!(e.contains(w), "{name}: {e}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }
}
