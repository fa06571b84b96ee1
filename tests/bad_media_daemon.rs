//! The daemon with one good camera and two broken files (a cut MP4, random
//! bytes) against a real mosquitto: the broken cameras end with a clear
//! error naming them, the good one is analysed and its events delivered, and
//! nothing panics. The good camera asks for a hardware decoder this machine
//! does not have and falls back to software, saying why.

mod common;

#[test]
fn broken_files_end_their_own_camera_only() {
    let broker = common::Mosquitto::start();
    let sub = common::Subscriber::connect(broker.port, "swbad/#");
    let dir = tempfile::tempdir().unwrap();
    // The first 20 s of the sample video: people enough for a congestion event.
    let good = common::vtest_head(dir.path(), 20);
    let cut = dir.path().join("vtest_cut.mp4");
    let full = std::fs::read(common::media("vtest.mp4")).unwrap();
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    let noise = dir.path().join("noise.mp4");
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let bytes: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    std::fs::write(&noise, bytes).unwrap();

    let cfg = common::write_config(
        dir.path(),
        &format!(
            r#"
[node]
id = "bad-node"
[mqtt]
url = "{broker}"
topic_prefix = "swbad"
[outbox]
path = "{outbox}"

[[camera]]
id = "cut"
url = "{cut}"

[[camera]]
id = "noise"
url = "{noise}"

[[camera]]
id = "good"
url = "{good}"
fps = 2
hwaccel = "auto"
[[camera.zone]]
id = "all"
polygon = [[0, 0], [1, 0], [1, 1], [0, 1]]
[camera.zone.congestion]
levels.light = 4
levels.moderate = 8
levels.heavy = 12
min_duration_s = 1
clear_duration_s = 2
"#,
            broker = broker.url(),
            outbox = dir.path().join("outbox.sqlite").display(),
            cut = cut.display(),
            noise = noise.display(),
            good = good.display(),
        ),
    );
    let stderr = common::run_daemon_to_end(&cfg, "info");
    let line = |id: &str| {
        stderr
            .lines()
            .find(|l| l.starts_with(&format!("streetwatch: camera {id}:")))
            .unwrap_or_else(|| panic!("no summary line for {id}:\n{stderr}"))
            .to_string()
    };
    let (cut_l, noise_l, good_l) = (line("cut"), line("noise"), line("good"));
    eprintln!("{cut_l}\n{noise_l}\n{good_l}");
    assert!(cut_l.contains(": error(camera cut: cannot open"), "{cut_l}");
    assert!(cut_l.contains("vtest_cut.mp4"), "{cut_l}");
    assert!(noise_l.contains(": error(camera noise:"), "{noise_l}");
    assert!(
        good_l.contains(": offline,"),
        "the good file ended normally: {good_l}"
    );
    // ~20 s at 10 fps (cut at a key frame), analysed at 2 fps: played to its end.
    // Frames no other frame refers to are not decoded unless analysed
    // (`decode = "sampled"`), so fewer than 200 are decoded, but never fewer
    // than those analysed.
    let analysed = common::number_before(&good_l, " analysed");
    assert!(analysed >= 39, "{good_l}");
    let decoded = common::number_before(&good_l, " frames decoded");
    assert!(decoded >= analysed && decoded <= 200, "{good_l}");
    // The broken cameras' errors are logged once, as state changes naming them.
    for cam in ["cut", "noise"] {
        assert!(
            stderr.lines().any(|l| l.contains("camera state")
                && l.contains(&format!("camera={cam} "))
                && l.contains("state=error(")),
            "{stderr}"
        );
    }
    assert!(
        stderr.lines().any(
            |l| l.contains("hardware decoding unavailable; decoding in software")
                && l.contains("camera=good")
                && l.contains("vaapi:")
        ),
        "{stderr}"
    );
    let events: Vec<_> = sub
        .drain(std::time::Duration::from_secs(1))
        .into_iter()
        .filter(|m| m.topic.starts_with("swbad/bad-node/events/good/"))
        .collect();
    assert!(
        !events.is_empty(),
        "the good camera's events were delivered:\n{stderr}"
    );
}
