//! Constant-velocity motion model of one track's box, in continuous time.
//!
//! The state is `(cx, cy, w, h)` and their rates of change. As in ByteTrack's
//! Kalman filter, the process and measurement noise are diagonal and the
//! measurement is the position part of the state, so the 8-dimensional
//! filter splits exactly into four independent position/velocity filters
//! with a 2×2 covariance each; that is what [`Motion`] runs.
//!
//! Noise is continuous-time (per second, not per frame) and proportional to
//! the box size along its axis (`w` for `cx` and `w`, `h` for `cy` and `h`),
//! so the filter behaves the same at 2 fps and at 10 fps and for near and far
//! objects.
//!
//! The constants trade smoothness for reaction: with a detector jittering by
//! ±4 px on a 60 px wide box, a standing object's estimated speed stays
//! around 3 px/s (std) at 2, 5 and 10 fps, and an object that starts to walk
//! reaches 80 % of its speed within about 0.8 s.

use std::time::Duration;

use crate::geom::PxBox;

/// Measurement noise: standard deviation of a detection's edges, as a
/// fraction of the box size.
const MEASURE_STD: f32 = 0.08;
/// Position diffusion: std of unexplained position change after one second,
/// as a fraction of the box size.
const POSITION_DIFFUSION: f32 = 0.2;
/// Velocity diffusion (white-noise acceleration): std of the change in
/// velocity after one second, in box sizes per second.
const VELOCITY_DIFFUSION: f32 = 0.5;
/// Initial position std, as a fraction of the box size.
const INITIAL_POSITION_STD: f32 = 2.0 * MEASURE_STD;
/// Initial velocity std, in box sizes per second: large, so the second
/// match sets the velocity almost entirely.
const INITIAL_VELOCITY_STD: f32 = 2.0;
/// Smallest box size used for noise scaling and predicted boxes (px).
const MIN_SIZE: f32 = 1.0;

/// One position/velocity pair with its covariance `[[a, b], [b, c]]`.
#[derive(Debug, Clone, Copy)]
struct Axis {
    pos: f32,
    vel: f32,
    a: f32,
    b: f32,
    c: f32,
}

impl Axis {
    fn new(pos: f32, scale: f32) -> Self {
        let sp = INITIAL_POSITION_STD * scale;
        let sv = INITIAL_VELOCITY_STD * scale;
        Self {
            pos,
            vel: 0.0,
            a: sp * sp,
            b: 0.0,
            c: sv * sv,
        }
    }

    fn predict(&mut self, dt: f32, scale: f32) {
        let qp = (POSITION_DIFFUSION * scale).powi(2);
        let qv = (VELOCITY_DIFFUSION * scale).powi(2);
        let dt2 = dt * dt;
        self.pos += self.vel * dt;
        self.a += 2.0 * dt * self.b + dt2 * self.c + qp * dt + qv * dt2 * dt / 3.0;
        self.b += dt * self.c + qv * dt2 / 2.0;
        self.c += qv * dt;
    }

    fn update(&mut self, z: f32, scale: f32) {
        let r = (MEASURE_STD * scale).powi(2);
        let s = self.a + r;
        let k0 = self.a / s;
        let k1 = self.b / s;
        let y = z - self.pos;
        self.pos += k0 * y;
        self.vel += k1 * y;
        let (a, b, c) = (self.a, self.b, self.c);
        self.a = (1.0 - k0) * a;
        self.b = (1.0 - k0) * b;
        self.c = c - k1 * b;
    }
}

/// The motion model of one track: four independent constant-velocity filters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Motion {
    cx: Axis,
    cy: Axis,
    w: Axis,
    h: Axis,
}

/// `[x0, y0, x1, y1]` → `(cx, cy, w, h)`.
fn centre_size(b: PxBox) -> (f32, f32, f32, f32) {
    (
        (b[0] + b[2]) * 0.5,
        (b[1] + b[3]) * 0.5,
        b[2] - b[0],
        b[3] - b[1],
    )
}

impl Motion {
    /// A motion model at rest at the detected box.
    pub(crate) fn new(bbox: PxBox) -> Self {
        let (cx, cy, w, h) = centre_size(bbox);
        let (sw, sh) = (w.max(MIN_SIZE), h.max(MIN_SIZE));
        Self {
            cx: Axis::new(cx, sw),
            cy: Axis::new(cy, sh),
            w: Axis::new(w, sw),
            h: Axis::new(h, sh),
        }
    }

    fn scales(&self) -> (f32, f32) {
        (self.w.pos.max(MIN_SIZE), self.h.pos.max(MIN_SIZE))
    }

    /// Advances the state by `dt`.
    pub(crate) fn predict(&mut self, dt: Duration) {
        let dt = dt.as_secs_f32();
        if dt <= 0.0 {
            return;
        }
        let (sw, sh) = self.scales();
        self.cx.predict(dt, sw);
        self.cy.predict(dt, sh);
        self.w.predict(dt, sw);
        self.h.predict(dt, sh);
    }

    /// Corrects the state with a matched detection's box.
    pub(crate) fn update(&mut self, bbox: PxBox) {
        let (cx, cy, w, h) = centre_size(bbox);
        let (sw, sh) = self.scales();
        self.cx.update(cx, sw);
        self.cy.update(cy, sh);
        self.w.update(w, sw);
        self.h.update(h, sh);
    }

    /// Stops the size from drifting while the object is not observed: the
    /// centre keeps moving, the box keeps its last size (as ByteTrack does
    /// for lost tracks).
    pub(crate) fn freeze_size(&mut self) {
        self.w.vel = 0.0;
        self.h.vel = 0.0;
    }

    /// The current box estimate, `[x0, y0, x1, y1]`, never smaller than 1 px.
    pub(crate) fn bbox(&self) -> PxBox {
        let (w, h) = self.scales();
        let (cx, cy) = (self.cx.pos, self.cy.pos);
        PxBox([cx - w * 0.5, cy - h * 0.5, cx + w * 0.5, cy + h * 0.5])
    }

    /// Velocity of the box centre, px/s.
    pub(crate) fn velocity(&self) -> [f32; 2] {
        [self.cx.vel, self.cy.vel]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(cx: f32, cy: f32) -> PxBox {
        PxBox([cx - 20.0, cy - 50.0, cx + 20.0, cy + 50.0])
    }

    #[test]
    fn constant_velocity_is_learned_and_extrapolated() {
        let mut m = Motion::new(boxed(100.0, 200.0));
        let dt = Duration::from_millis(200);
        let mut cx = 100.0;
        for _ in 0..20 {
            cx += 80.0 * 0.2;
            m.predict(dt);
            m.update(boxed(cx, 200.0));
        }
        let v = m.velocity();
        assert!((v[0] - 80.0).abs() < 1.0, "vx {}", v[0]);
        assert!(v[1].abs() < 0.5, "vy {}", v[1]);
        m.predict(Duration::from_secs(1));
        let b = m.bbox();
        let pcx = (b[0] + b[2]) / 2.0;
        assert!((pcx - (cx + 80.0)).abs() < 2.0, "predicted cx {pcx}");
        assert!(((b[2] - b[0]) - 40.0).abs() < 0.5);
    }

    #[test]
    fn zero_dt_changes_nothing_and_size_stays_positive() {
        let mut m = Motion::new(PxBox([10.0, 10.0, 10.5, 10.5]));
        let before = m.bbox();
        m.predict(Duration::ZERO);
        assert_eq!(before, m.bbox());
        let b = m.bbox();
        assert!(b[2] - b[0] >= 1.0 && b[3] - b[1] >= 1.0);
    }
}
