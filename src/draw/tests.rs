use super::*;

fn grey(w: u32, h: u32) -> RgbImage {
    RgbImage::from_pixel(w, h, Rgb([60, 60, 60]))
}

fn is(img: &RgbImage, x: u32, y: u32, c: Rgb<u8>) -> bool {
    *img.get_pixel(x, y) == c
}

fn count(img: &RgbImage, c: Rgb<u8>) -> usize {
    img.pixels().filter(|p| **p == c).count()
}

#[test]
fn the_label_font_is_found_or_its_absence_named() {
    font().expect("fonts-dejavu-core is a set-up dependency");
    let err = load_font(&[PathBuf::from("/nonexistent/a.ttf")]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/a.ttf"), "{msg}");
    assert!(msg.contains("fonts-dejavu-core"), "{msg}");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.ttf");
    std::fs::write(&junk, b"not a font").unwrap();
    let err = load_font(std::slice::from_ref(&junk))
        .unwrap_err()
        .to_string();
    assert!(err.contains("junk.ttf"), "{err}");
}

#[test]
fn styles_follow_the_image() {
    for (w, h, line, text) in [
        (640, 480, 2, 13.333333),
        (1280, 720, 3, 20.0),
        (3840, 2160, 5, 40.0),
        (200, 100, 2, 13.0),
    ] {
        let s = Style::for_image(w, h);
        assert_eq!(s.line, line, "{w}x{h}");
        assert!((s.text - text).abs() < 0.01, "{w}x{h}: {}", s.text);
    }
}

#[test]
fn a_box_outline_is_on_the_box_edges_and_nowhere_else() {
    let f = font().unwrap();
    let mut img = grey(200, 100);
    let mut p = Painter::new(&mut img, &f);
    let r = p.rect(&FracBox([0.1, 0.2, 0.5, 0.8]), colour::RED).unwrap();
    assert_eq!((r.left(), r.top(), r.width(), r.height()), (20, 20, 80, 60));
    for (x, y) in [(20, 50), (21, 50), (99, 50), (98, 50), (60, 20), (60, 79)] {
        assert!(is(&img, x, y, colour::RED), "({x}, {y})");
    }
    for (x, y) in [(22, 50), (97, 50), (60, 22), (60, 50), (19, 50), (100, 50)] {
        assert!(!is(&img, x, y, colour::RED), "({x}, {y})");
    }
    assert_eq!(count(&img, colour::RED), 80 * 60 - 76 * 56);
}

#[test]
fn boxes_off_the_image_or_not_numbers_draw_nothing() {
    let f = font().unwrap();
    let mut img = grey(64, 48);
    let mut p = Painter::new(&mut img, &f);
    assert!(
        p.rect(&FracBox([f32::NAN, 0.0, 0.5, 0.5]), colour::RED)
            .is_none()
    );
    assert!(
        p.rect(&FracBox([1.2, 1.2, 1.5, 1.5]), colour::RED)
            .is_none()
    );
    assert!(
        p.rect(&FracBox([-0.5, 0.0, -0.1, 0.5]), colour::RED)
            .is_none()
    );
    assert_eq!(count(&img, colour::RED), 0);
}

#[test]
fn a_polygon_outline_runs_along_its_edges() {
    let f = font().unwrap();
    let mut img = grey(200, 200);
    let mut p = Painter::new(&mut img, &f);
    p.polygon(&[[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]], colour::GREEN);
    // On each edge: the midpoints of the three sides.
    for (x, y) in [(100, 20), (140, 100), (60, 100)] {
        assert!(is(&img, x, y, colour::GREEN), "({x}, {y})");
    }
    // Inside and outside stay as they were.
    for (x, y) in [(100, 60), (100, 100), (10, 190), (190, 190)] {
        assert!(is(&img, x, y, Rgb([60, 60, 60])), "({x}, {y})");
    }
}

#[test]
fn labels_carry_their_text_and_stay_on_the_image() {
    let f = font().unwrap();
    let mut img = grey(320, 240);
    let mut p = Painter::new(&mut img, &f);
    let r = p.label((300, 230), "person 0.82", colour::WHITE, colour::BLACK);
    assert!(r.right() < 320 && r.bottom() < 240, "{r:?}");
    // Text is drawn: white pixels inside the black tab.
    let mut white = 0;
    for y in r.top()..=r.bottom() {
        for x in r.left()..=r.right() {
            if img.get_pixel(x as u32, y as u32).0[0] > 200 {
                white += 1;
            }
        }
    }
    assert!(white > 30, "{white} text pixels");
    // A longer text is wider.
    let p = Painter::new(&mut img, &f);
    assert!(p.label_size("litter · static change").0 > p.label_size("litter").0);
}

#[test]
fn a_tag_sits_above_its_box_or_inside_at_the_top() {
    let f = font().unwrap();
    let mut img = grey(400, 300);
    let mut p = Painter::new(&mut img, &f);
    let (_, lh) = p.label_size("car");
    p.tagged(&FracBox([0.25, 0.5, 0.75, 0.9]), "car", colour::YELLOW);
    // The tab's background is the box's colour, just above its top-left corner.
    assert!(is(&img, 101, 150 - lh / 2, colour::YELLOW));
    let mut p = Painter::new(&mut img, &f);
    p.tagged(&FracBox([0.0, 0.0, 0.2, 0.3]), "bus", colour::BLUE);
    assert!(is(&img, 1, lh / 2, colour::BLUE));
}

#[test]
fn corners_and_legends_are_in_their_corners() {
    let f = font().unwrap();
    let mut img = grey(400, 300);
    let mut p = Painter::new(&mut img, &f);
    let r = p.corner(Corner::BottomRight, "cam-1");
    assert!(r.right() >= 380 && r.bottom() >= 280, "{r:?}");
    let r = p.corner(Corner::TopLeft, "cam-1");
    assert!(r.left() <= 10 && r.top() <= 10, "{r:?}");
    p.legend(
        Corner::TopRight,
        &[
            (colour::ORANGE, "litter".into()),
            (colour::RED, "congestion".into()),
        ],
    );
    let orange = img
        .enumerate_pixels()
        .filter(|(_, _, p)| **p == colour::ORANGE)
        .map(|(x, y, _)| (x, y))
        .collect::<Vec<_>>();
    assert!(!orange.is_empty());
    assert!(
        orange.iter().all(|(x, y)| *x > 200 && *y < 60),
        "{orange:?}"
    );
}

#[test]
fn text_is_black_on_light_and_white_on_dark() {
    assert_eq!(text_on(colour::YELLOW), colour::BLACK);
    assert_eq!(text_on(colour::BLUE), colour::WHITE);
    assert_eq!(text_on(colour::BLACK), colour::WHITE);
}
