//! Drawing on frames: box outlines, zone polygons, points and text labels,
//! for evidence, previews and annotated replays.
//!
//! In: an RGB image and what to draw, in fractions of the frame (boxes
//! `[x0, y0, x1, y1]`, polygon corners `[x, y]`) or pixels. Out: the same
//! image, drawn on. Shapes are rasterised by `imageproc`, text by `ab_glyph`
//! with a TrueType font found at run time ([`font`]): DejaVu Sans from
//! Debian's `fonts-dejavu-core`, or the file `STREETWATCH_FONT` names.
//!
//! Line widths and text sizes follow the image's size ([`Style::for_image`]),
//! so a 480p preview and a 4K evidence frame read alike.

use std::path::PathBuf;
use std::sync::OnceLock;

use ab_glyph::{FontArc, PxScale};
use image::{Rgb, RgbImage};
use imageproc::drawing::{
    draw_filled_circle_mut, draw_filled_rect_mut, draw_polygon_mut, draw_text_mut, text_size,
};
use imageproc::point::Point;
use imageproc::rect::Rect;

use crate::geom::FracBox;

/// Where Debian's `fonts-dejavu-core` puts its fonts, bold first (easier to read small).
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
];

/// The environment variable that names another TrueType/OpenType font file.
pub const FONT_ENV: &str = "STREETWATCH_FONT";

#[derive(Debug, Clone, thiserror::Error)]
pub enum DrawError {
    #[error(
        "no font for labels: none of {tried} exists (install Debian's fonts-dejavu-core, or set {FONT_ENV} to a .ttf file)"
    )]
    FontMissing { tried: String },
    #[error("font {path}: {message}")]
    FontInvalid { path: PathBuf, message: String },
}

/// The label font: [`FONT_ENV`]'s file if set, else the first of [`FONT_CANDIDATES`]
/// that exists. Read once per process.
pub fn font() -> Result<FontArc, DrawError> {
    static FONT: OnceLock<Result<FontArc, DrawError>> = OnceLock::new();
    FONT.get_or_init(|| {
        let env = std::env::var_os(FONT_ENV).filter(|v| !v.is_empty());
        let candidates: Vec<PathBuf> = match env {
            Some(p) => vec![p.into()],
            None => FONT_CANDIDATES.iter().map(PathBuf::from).collect(),
        };
        load_font(&candidates)
    })
    .clone()
}

/// The first of `candidates` that exists, parsed.
pub fn load_font(candidates: &[PathBuf]) -> Result<FontArc, DrawError> {
    let Some(path) = candidates.iter().find(|p| p.is_file()) else {
        let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        return Err(DrawError::FontMissing {
            tried: tried.join(", "),
        });
    };
    let invalid = |message: String| DrawError::FontInvalid {
        path: path.clone(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| invalid(e.to_string()))?;
    FontArc::try_from_vec(bytes).map_err(|e| invalid(e.to_string()))
}

/// Colours, chosen to stay distinct after JPEG's chroma subsampling.
pub mod colour {
    use image::Rgb;
    pub const YELLOW: Rgb<u8> = Rgb([255, 221, 0]);
    pub const RED: Rgb<u8> = Rgb([235, 40, 40]);
    pub const ORANGE: Rgb<u8> = Rgb([255, 140, 0]);
    pub const GREEN: Rgb<u8> = Rgb([40, 210, 70]);
    pub const BLUE: Rgb<u8> = Rgb([40, 120, 255]);
    pub const CYAN: Rgb<u8> = Rgb([0, 220, 230]);
    pub const MAGENTA: Rgb<u8> = Rgb([230, 40, 220]);
    pub const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
    pub const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
    pub const GREY: Rgb<u8> = Rgb([150, 150, 150]);

    /// A colour per class id, the same on every picture.
    pub fn of_class(class_id: usize) -> Rgb<u8> {
        const PALETTE: [Rgb<u8>; 6] = [CYAN, GREEN, BLUE, MAGENTA, ORANGE, YELLOW];
        PALETTE[class_id % PALETTE.len()]
    }

    /// The colour of a zone rule (`litter`, `congestion`, …).
    pub fn of_rule(rule: &str) -> Rgb<u8> {
        match rule {
            "litter" => ORANGE,
            "congestion" => RED,
            "illegal_parking" => BLUE,
            "street_vending" => MAGENTA,
            "outside_business" => CYAN,
            "piled_materials" => YELLOW,
            _ => WHITE,
        }
    }
}

/// Sizes that follow the image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    /// Outline width, pixels.
    pub line: u32,
    /// Text height, pixels.
    pub text: f32,
}

impl Style {
    /// 2 px lines below 1000 px wide, then 3 px per 1000; text 1/36 of the shorter side (13–40 px).
    pub fn for_image(width: u32, height: u32) -> Self {
        Self {
            line: (width / 1000 + 2).min(6),
            text: (width.min(height) as f32 / 36.0).clamp(13.0, 40.0),
        }
    }
}

/// Pixels of a fraction of a `size`-pixel side.
fn px(v: f64, size: u32) -> f32 {
    (v * size as f64) as f32
}

/// Draws on one image with one font and one [`Style`].
pub struct Painter<'a> {
    pub img: &'a mut RgbImage,
    pub font: &'a FontArc,
    pub style: Style,
}

/// Which corner of the image a text goes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
}

impl<'a> Painter<'a> {
    pub fn new(img: &'a mut RgbImage, font: &'a FontArc) -> Self {
        let style = Style::for_image(img.width(), img.height());
        Self { img, font, style }
    }

    /// A box's outline, `style.line` pixels wide inside the box, clipped to the image.
    /// The box is fractions of the image. Returns the box in pixels, if it is on the image.
    pub fn rect(&mut self, b: &FracBox, c: Rgb<u8>) -> Option<Rect> {
        let (w, h) = self.img.dimensions();
        let r = frac_rect(b, w, h)?;
        let t = self.style.line.min(r.width()).min(r.height()).max(1);
        let (x0, y0, rw, rh) = (r.left(), r.top(), r.width(), r.height());
        for band in [
            Rect::at(x0, y0).of_size(rw, t),
            Rect::at(x0, y0 + rh as i32 - t as i32).of_size(rw, t),
            Rect::at(x0, y0).of_size(t, rh),
            Rect::at(x0 + rw as i32 - t as i32, y0).of_size(t, rh),
        ] {
            draw_filled_rect_mut(self.img, band, c);
        }
        Some(r)
    }

    /// A closed polygon's outline, `style.line` pixels wide, centred on its edges.
    /// Corners are fractions of the image.
    pub fn polygon(&mut self, corners: &[[f64; 2]], c: Rgb<u8>) {
        let (w, h) = self.img.dimensions();
        let pts: Vec<(f32, f32)> = corners
            .iter()
            .map(|[x, y]| (px(*x, w), px(*y, h)))
            .collect();
        for i in 0..pts.len() {
            self.segment(pts[i], pts[(i + 1) % pts.len()], c);
        }
    }

    /// A straight line `style.line` pixels wide, in pixels, with round ends.
    pub fn segment(&mut self, a: (f32, f32), b: (f32, f32), c: Rgb<u8>) {
        let half = self.style.line as f32 / 2.0;
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt();
        if len >= 1.0 {
            let (nx, ny) = (-dy / len * half, dx / len * half);
            let quad: Vec<Point<i32>> = [
                (a.0 + nx, a.1 + ny),
                (b.0 + nx, b.1 + ny),
                (b.0 - nx, b.1 - ny),
                (a.0 - nx, a.1 - ny),
            ]
            .iter()
            .map(|(x, y)| Point::new(x.round() as i32, y.round() as i32))
            .collect();
            // draw_polygon_mut refuses a polygon whose first and last points are equal.
            if quad[0] != quad[3] {
                draw_polygon_mut(self.img, &quad, c);
            }
        }
        let r = half.round().max(1.0) as i32;
        for p in [a, b] {
            draw_filled_circle_mut(self.img, (p.0.round() as i32, p.1.round() as i32), r, c);
        }
    }

    /// A filled dot of radius `r` pixels at fractions `(x, y)` of the image, ringed in black.
    pub fn dot(&mut self, (x, y): (f64, f64), r: i32, c: Rgb<u8>) {
        let (w, h) = self.img.dimensions();
        let at = (px(x, w).round() as i32, px(y, h).round() as i32);
        draw_filled_circle_mut(self.img, at, r + 1, colour::BLACK);
        draw_filled_circle_mut(self.img, at, r, c);
    }

    /// The size in pixels `text` takes as a label (with its margin).
    pub fn label_size(&self, text: &str) -> (u32, u32) {
        let (tw, th) = text_size(PxScale::from(self.style.text), self.font, text);
        let pad = self.pad();
        (tw + 2 * pad, (th.max(self.style.text as u32)) + 2 * pad)
    }

    fn pad(&self) -> u32 {
        (self.style.text / 5.0).round() as u32
    }

    /// `text` on a filled background, its top-left corner at `(x, y)` pixels, moved
    /// inside the image if it would leave it. Returns where it went.
    pub fn label(&mut self, (x, y): (i32, i32), text: &str, fg: Rgb<u8>, bg: Rgb<u8>) -> Rect {
        let (lw, lh) = self.label_size(text);
        let (w, h) = self.img.dimensions();
        let x = x.clamp(0, (w as i32 - lw as i32).max(0));
        let y = y.clamp(0, (h as i32 - lh as i32).max(0));
        let r = Rect::at(x, y).of_size(lw.max(1), lh.max(1));
        draw_filled_rect_mut(self.img, r, bg);
        let pad = self.pad() as i32;
        draw_text_mut(
            self.img,
            fg,
            x + pad,
            y + pad,
            PxScale::from(self.style.text),
            self.font,
            text,
        );
        r
    }

    /// A box's outline with `text` on a tab of the same colour above it (inside it when
    /// the box touches the top of the image).
    pub fn tagged(&mut self, b: &FracBox, text: &str, c: Rgb<u8>) -> Option<Rect> {
        let r = self.rect(b, c)?;
        let (_, lh) = self.label_size(text);
        let y = if r.top() >= lh as i32 {
            r.top() - lh as i32
        } else {
            r.top()
        };
        self.label((r.left(), y), text, text_on(c), c);
        Some(r)
    }

    /// `text` in a corner of the image, white on black.
    pub fn corner(&mut self, corner: Corner, text: &str) -> Rect {
        let (lw, lh) = self.label_size(text);
        let (w, h) = self.img.dimensions();
        let m = self.style.line as i32 * 2;
        let x = match corner {
            Corner::TopLeft | Corner::BottomLeft => m,
            _ => w as i32 - lw as i32 - m,
        };
        let y = match corner {
            Corner::TopLeft | Corner::TopRight => m,
            _ => h as i32 - lh as i32 - m,
        };
        self.label((x, y), text, colour::WHITE, colour::BLACK)
    }

    /// A legend: one line per entry, a colour swatch then the text, stacked from
    /// `corner`.
    pub fn legend(&mut self, corner: Corner, entries: &[(Rgb<u8>, String)]) {
        if entries.is_empty() {
            return;
        }
        let (w, h) = self.img.dimensions();
        let swatch = self.style.text.round() as u32;
        let rows: Vec<(u32, u32)> = entries.iter().map(|(_, t)| self.label_size(t)).collect();
        let width = rows.iter().map(|r| r.0).max().unwrap_or(0) + swatch + self.pad();
        let height: u32 = rows.iter().map(|r| r.1).sum();
        let m = self.style.line as i32 * 2;
        let x = match corner {
            Corner::TopLeft | Corner::BottomLeft => m,
            _ => w as i32 - width as i32 - m,
        };
        let mut y = match corner {
            Corner::TopLeft | Corner::TopRight => m,
            _ => h as i32 - height as i32 - m,
        };
        for ((c, text), (_, rh)) in entries.iter().zip(rows) {
            draw_filled_rect_mut(
                self.img,
                Rect::at(x, y).of_size(swatch + self.pad(), rh),
                colour::BLACK,
            );
            let inset = self.pad() as i32;
            draw_filled_rect_mut(
                self.img,
                Rect::at(x + inset, y + inset).of_size(
                    swatch.saturating_sub(self.pad()).max(1),
                    rh.saturating_sub(2 * self.pad()).max(1),
                ),
                *c,
            );
            self.label(
                (x + (swatch + self.pad()) as i32, y),
                text,
                colour::WHITE,
                colour::BLACK,
            );
            y += rh as i32;
        }
    }
}

/// Black or white, whichever reads better on `c`.
pub fn text_on(c: Rgb<u8>) -> Rgb<u8> {
    let [r, g, b] = c.0;
    let luma = 0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32;
    if luma > 140.0 {
        colour::BLACK
    } else {
        colour::WHITE
    }
}

/// A box in fractions as a pixel rectangle, clipped to a `w × h` image; `None` if it is
/// not a number or lies wholly outside.
pub fn frac_rect(b: &FracBox, w: u32, h: u32) -> Option<Rect> {
    if b.0.iter().any(|v| !v.is_finite()) || w == 0 || h == 0 {
        return None;
    }
    let edge = |v: f32, size: u32| (v as f64 * size as f64).clamp(0.0, size as f64).round() as i32;
    let (x0, x1) = (edge(b[0].min(b[2]), w), edge(b[0].max(b[2]), w));
    let (y0, y1) = (edge(b[1].min(b[3]), h), edge(b[1].max(b[3]), h));
    if b[0].max(b[2]) < 0.0 || b[1].max(b[3]) < 0.0 || b[0].min(b[2]) > 1.0 || b[1].min(b[3]) > 1.0
    {
        return None;
    }
    let x0 = x0.min(w as i32 - 1);
    let y0 = y0.min(h as i32 - 1);
    Some(Rect::at(x0, y0).of_size((x1 - x0).max(1) as u32, (y1 - y0).max(1) as u32))
}

#[cfg(test)]
mod tests;
