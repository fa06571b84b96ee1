//! `streetwatch bench` through the real binary: the sample video through the
//! real model, with the scene model's grey image made from RGB and from the
//! decoder's luma plane (`[camera.scene] from_luma`), where the detector's
//! frames get their RGB on demand.

mod common;

use std::process::Command;

fn config(from_luma: bool) -> String {
    format!(
        r#"
[node]
id = "size-node"

[mqtt]
url = "mqtt://127.0.0.1:1"

[outbox]
path = "outbox.sqlite"

{camera}
[camera.scene]
from_luma = {from_luma}
"#,
        camera = common::plaza_camera(&common::media("vtest.mp4")),
    )
}

#[test]
fn bench_sizes_the_box_with_the_scene_on_rgb_and_on_luma() {
    for from_luma in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = common::write_config(dir.path(), &config(from_luma));
        let out = Command::new(common::bin())
            .args(["bench", "--seconds", "3", "--config"])
            .arg(&cfg)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "from_luma = {from_luma}:\n{stdout}\n{stderr}"
        );
        // The camera's row: id, fps, frames analysed, then per-stage milliseconds.
        let row: Vec<&str> = stdout
            .lines()
            .find(|l| l.starts_with("campus "))
            .unwrap_or_else(|| panic!("no row for the camera:\n{stdout}"))
            .split_whitespace()
            .collect();
        let analysed: u64 = row[2].parse().unwrap();
        let inference: f64 = row[5].parse().unwrap();
        assert!(analysed > 0, "from_luma = {from_luma}: {row:?}");
        assert!(inference > 0.0, "the detector ran: {row:?}");
        assert!(stdout.contains("of this box"), "the sizing line:\n{stdout}");
    }
}
