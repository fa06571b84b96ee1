//! The synthetic street the scene tests play: a textured, noisy "street"
//! (640×480, 5 fps) with blocks added, removed, moved, and the view's
//! exposure or position changed.

use std::time::Duration;

use crate::geom::PxBox;
use crate::scene::{SceneModel, SceneUpdate};

pub(super) const W: u32 = 640;
pub(super) const H: u32 = 480;
pub(super) const FPS: u64 = 5;

/// A deterministic 32-bit hash (for texture and per-frame noise).
pub(super) fn hash(x: u32, y: u32, seed: u32) -> u32 {
    let mut h = x
        .wrapping_mul(0x9E37_79B1)
        .wrapping_add(y.wrapping_mul(0x85EB_CA77))
        .wrapping_add(seed.wrapping_mul(0xC2B2_AE3D));
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297A_2D39);
    h ^ (h >> 15)
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Look {
    Flat([u8; 3]),
    /// 8-px checkerboard of two colours.
    Checker([u8; 3], [u8; 3]),
}

#[derive(Clone, Copy)]
pub(super) struct Block {
    pub(super) x: i32,
    pub(super) y: i32,
    pub(super) w: i32,
    pub(super) h: i32,
    pub(super) look: Look,
}

impl Block {
    pub(super) fn at(x: i32, y: i32, w: i32, h: i32, look: Look) -> Self {
        Self { x, y, w, h, look }
    }
    pub(super) fn bbox(&self) -> PxBox {
        PxBox([
            self.x as f32,
            self.y as f32,
            (self.x + self.w) as f32,
            (self.y + self.h) as f32,
        ])
    }
}

/// A white bag and a yellow-and-black parcel: both stand out from the street in grey.
pub(super) const BAG: Look = Look::Flat([245, 245, 240]);
pub(super) const PARCEL: Look = Look::Checker([250, 240, 120], [25, 20, 15]);

/// How the view is rendered: exposure gain and offset, and a shift of the
/// background by `shift` px right and 1.5 × `shift` down (the camera moved).
#[derive(Clone, Copy)]
pub(super) struct View {
    pub(super) gain: f32,
    pub(super) offset: f32,
    pub(super) shift: u32,
    /// A shaded (or lit) rectangle `x0, y0, x1, y1` and its gain, on top of `gain`.
    pub(super) shade: Option<([u32; 4], f32)>,
}

pub(super) const NORMAL: View = View {
    gain: 1.0,
    offset: 0.0,
    shift: 0,
    shade: None,
};

/// A cobbled street: diagonal tiles, a slow shading wave, fixed per-pixel
/// texture, plus ±4 levels of fresh noise in every frame.
pub(super) fn frame(blocks: &[Block], n: u64, view: View) -> Vec<u8> {
    let mut rgb = Vec::with_capacity((W * H * 3) as usize);
    for y in 0..H {
        for x in 0..W {
            let (xs, ys) = (x + view.shift, y + view.shift * 3 / 2);
            let mut px = blocks
                .iter()
                .find(|b| {
                    (x as i32) >= b.x
                        && (x as i32) < b.x + b.w
                        && (y as i32) >= b.y
                        && (y as i32) < b.y + b.h
                })
                .map(|b| match b.look {
                    Look::Flat(c) => c.map(f32::from),
                    Look::Checker(a, c) => {
                        let odd = ((x as i32 - b.x) / 8 + (y as i32 - b.y) / 8) % 2 == 1;
                        (if odd { c } else { a }).map(f32::from)
                    }
                })
                .unwrap_or_else(|| {
                    let tile = if ((xs + ys) / 24 + (xs + 1000 - ys) / 24) % 2 == 0 {
                        28.0
                    } else {
                        -28.0
                    };
                    let wave = 35.0 * (xs as f32 * 0.011).sin() * (ys as f32 * 0.017).cos();
                    let grain = (hash(xs, ys, 7) % 31) as f32 - 15.0;
                    let v = 115.0 + tile + wave + grain;
                    [v, v * 0.96, v * 0.88]
                });
            let noise = (hash(x, y, n as u32 + 1000) % 9) as f32 - 4.0;
            let gain = match view.shade {
                Some(([x0, y0, x1, y1], g)) if (x0..x1).contains(&x) && (y0..y1).contains(&y) => {
                    view.gain * g
                }
                _ => view.gain,
            };
            for c in &mut px {
                *c = (*c * gain + view.offset + noise).clamp(0.0, 255.0);
            }
            rgb.extend(px.map(|c| c as u8));
        }
    }
    rgb
}

pub(super) fn pts(n: u64) -> Duration {
    Duration::from_millis(n * 1000 / FPS)
}

/// Frame number at `s` seconds.
pub(super) fn at(s: f64) -> u64 {
    (s * FPS as f64).round() as u64
}

pub(super) fn iou(a: PxBox, b: PxBox) -> f32 {
    a.iou(&b)
}

/// Runs frames `from..to` of a scripted scene; returns each frame's update.
pub(super) fn play(
    model: &mut SceneModel,
    from: u64,
    to: u64,
    script: impl Fn(u64) -> (Vec<Block>, View),
) -> Vec<(u64, SceneUpdate)> {
    (from..to)
        .map(|n| {
            let (blocks, view) = script(n);
            let rgb = frame(&blocks, n, view);
            (n, model.update(pts(n), W, H, &rgb))
        })
        .collect()
}

pub(super) fn first_with_region(updates: &[(u64, SceneUpdate)]) -> Option<u64> {
    updates
        .iter()
        .find(|(_, u)| !u.regions.is_empty())
        .map(|(n, _)| *n)
}
