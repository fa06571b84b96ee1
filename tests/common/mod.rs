//! Test harness: real peers (mosquitto started on a free loopback port), the
//! real model and media from the set-up cache, and the daemon binary itself.
#![allow(dead_code)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Camera `campus` on `clip` at 2 fps, with a congestion rule on zone `plaza`
/// (the whole frame; light from 4 persons, moderate 8, heavy 12): the config
/// snippet of the tests that need events from a real video.
pub fn plaza_camera(clip: &Path) -> String {
    format!(
        r#"[[camera]]
id = "campus"
url = "{clip}"
fps = 2

[[camera.zone]]
id = "plaza"
polygon = [[0, 0], [1, 0], [1, 1], [0, 1]]

[camera.zone.congestion]
classes = ["person"]
levels.light = 4
levels.moderate = 8
levels.heavy = 12
min_duration_s = 1
clear_duration_s = 2
update_interval_s = 5
"#,
        clip = clip.display()
    )
}

/// A file set-up put in the cache; a clear failure if it is missing.
pub fn cached(rel: &str) -> PathBuf {
    let p = streetwatch::cache_dir().join(rel);
    assert!(
        p.exists(),
        "{} is missing: run `make setup` (or `make test`, which runs it) first",
        p.display()
    );
    p
}

pub fn media(name: &str) -> PathBuf {
    cached(&format!("media/{name}"))
}

/// Runs `cmd` to its end and returns what it printed; fails the test, naming the
/// command and showing its stderr, unless it succeeded.
pub fn output_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} cannot start: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The first `seconds` of the sample video (`vtest.mp4`, stream-copied) in `dir`.
pub fn vtest_head(dir: &Path, seconds: u32) -> PathBuf {
    let clip = dir.join(format!("vtest_{seconds}s.mp4"));
    output_ok(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-i"])
            .arg(media("vtest.mp4"))
            .args(["-t", &seconds.to_string(), "-c", "copy"])
            .arg(&clip),
    );
    clip
}

pub fn default_model() -> PathBuf {
    cached("models/nanodet-m-416.onnx")
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_streetwatch")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real mosquitto broker on 127.0.0.1, killed on drop.
pub struct Mosquitto {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Extra lines for mosquitto.conf (TLS listeners, …).
    extra: String,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Mosquitto {
        Self::start_with(port, "")
    }

    /// Starts mosquitto with `extra` config lines; the listener on `port` is added
    /// unless `extra` defines its own. Sessions persist across [`Mosquitto::restart`].
    pub fn start_with(port: u16, extra: &str) -> Mosquitto {
        let mut m = Mosquitto {
            port,
            child: None,
            dir: tempfile::tempdir().unwrap(),
            extra: extra.to_string(),
        };
        m.spawn();
        m
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        let mut f = std::fs::File::create(&conf).unwrap();
        if !self.extra.contains("listener") {
            writeln!(f, "listener {} 127.0.0.1\nallow_anonymous true", self.port).unwrap();
        }
        // Started as root, mosquitto would drop to its own user and lose access to
        // this test's private files; keep it as the test's user.
        if is_root() {
            writeln!(f, "user root").unwrap();
        }
        writeln!(
            f,
            "{}\npersistence true\npersistence_location {}/\nautosave_interval 1",
            self.extra,
            self.dir.path().display()
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed (make setup)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the broker the way an operator would (SIGTERM: it saves its sessions).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same sessions.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Sends a signal (`TERM`, `KILL`, …) to a process.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// A message a [`Subscriber`] received.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// An MQTT subscriber on its own thread; messages arrive on a channel.
pub struct Subscriber {
    rx: mpsc::Receiver<Message>,
}

impl Subscriber {
    /// Connects, subscribes to `filter` and returns once the broker confirmed it.
    pub fn connect(port: u16, filter: &str) -> Subscriber {
        Self::connect_with(port, filter, false)
    }

    /// With `persistent`, the session (and messages queued while this subscriber
    /// is away) survives reconnects and broker restarts.
    pub fn connect_with(port: u16, filter: &str, persistent: bool) -> Subscriber {
        Self::connect_as(port, filter, persistent, None)
    }

    /// [`Subscriber::connect_with`], logging in with `login` (username, password).
    pub fn connect_as(
        port: u16,
        filter: &str,
        persistent: bool,
        login: Option<(&str, &str)>,
    ) -> Subscriber {
        use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
        let id = format!("test-sub-{}-{}", std::process::id(), free_port());
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        if let Some((user, password)) = login {
            opts.set_credentials(user, password);
        }
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_clean_session(!persistent);
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut conn) = Client::new(opts, 64);
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let filter = filter.to_string();
        std::thread::spawn(move || {
            for n in conn.iter() {
                match n {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        client.subscribe(&filter, QoS::AtLeastOnce).unwrap();
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let m = Message {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        };
                        if tx.send(m).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("subscription confirmed by the broker");
        Subscriber { rx }
    }

    pub fn recv(&self, timeout: Duration) -> Option<Message> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Everything that arrives until nothing has come for `quiet`.
    pub fn drain(&self, quiet: Duration) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(m) = self.recv(quiet) {
            out.push(m);
        }
        out
    }
}

/// Publisher options for a local mosquitto: plain MQTT, no commands, events on
/// `{prefix}/{node}/events/...`.
pub fn publisher_options(
    port: u16,
    prefix: &str,
    node: &str,
) -> streetwatch::mqtt::PublisherOptions {
    streetwatch::mqtt::PublisherOptions {
        broker: streetwatch::mqtt::BrokerUrl::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap(),
        client_id: format!("{node}-publisher-{}", free_port()),
        keep_alive: Duration::from_secs(5),
        topic_prefix: prefix.into(),
        node: node.into(),
        max_inflight: 32,
        drain_timeout: Duration::from_secs(20),
        tls: Default::default(),
        credentials: None,
        cameras: tokio::sync::watch::channel(Vec::new()).1,
        control: None,
        protocol: Default::default(),
        clock: streetwatch::clock::system(),
        stats_interval: Duration::from_secs(30),
        max_packet_bytes: None,
        jpeg_budget: streetwatch::evidence::JpegBudget::new(streetwatch::mqtt::DEFAULT_MAX_PACKET),
        evidence_quality: 80,
        retry: Default::default(),
        memory_queue: streetwatch::mqtt::DEFAULT_MEMORY_QUEUE,
        info: None,
    }
}

/// A well-formed congestion update from `node`/`camera`; `n` makes it
/// recognisable (`stream_time_s` and `metrics.n`).
pub fn sample_event(node: &str, camera: &str, n: usize) -> streetwatch::event::Event {
    use streetwatch::event::{Event, EventObject, Phase, SCHEMA, rfc3339};
    let now = rfc3339(std::time::SystemTime::now());
    Event {
        schema: SCHEMA.into(),
        id: uuid::Uuid::now_v7().to_string(),
        seq: 0,
        node: node.into(),
        camera: camera.into(),
        zone: "crossing".into(),
        site: Default::default(),
        kind: "congestion".into(),
        phase: Phase::Update,
        incident: uuid::Uuid::now_v7().to_string(),
        ts: now.clone(),
        started_at: now,
        ended_at: None,
        stream_time_s: n as f64,
        objects: vec![EventObject {
            class: "person".into(),
            score: 0.5,
            bbox: streetwatch::geom::FracBox([0.1, 0.2, 0.3, 0.4]),
            track_id: Some(7),
            role: None,
        }],
        metrics: std::collections::BTreeMap::from([("n".to_string(), n as f64)]),
        attributes: std::collections::BTreeMap::from([(
            "level".to_string(),
            "moderate".to_string(),
        )]),
        evidence: None,
        masked: Vec::new(),
    }
}

/// Writes `text` as a config file in `dir`.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("streetwatch.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Validates `event` against the committed `docs/event.schema.json`; panics with the reason.
pub fn assert_schema_valid(event: &serde_json::Value) {
    use std::sync::OnceLock;
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    let v = VALIDATOR.get_or_init(|| {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/event.schema.json"
        ))
        .unwrap();
        let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("docs/event.schema.json is a valid JSON Schema")
    });
    if let Err(e) = v.validate(event) {
        panic!("event does not match docs/event.schema.json: {e}\n{event}");
    }
}

/// Whether `event` passes the committed schema (for negative checks).
pub fn schema_accepts(event: &serde_json::Value) -> bool {
    std::panic::catch_unwind(|| assert_schema_valid(event)).is_ok()
}

/// What a [`RtspServer`] serves on its `/cam` mount.
#[derive(Debug, Clone)]
pub enum RtspMedia {
    /// A live test pattern (`videotestsrc is-live=true ! x264enc tune=zerolatency`).
    TestPattern { fps: u32, width: u32, height: u32 },
    /// An H.264 MP4 file, looped.
    File(PathBuf),
}

/// A real RTSP server (GStreamer's, run by Debian's `/usr/bin/python3`) on
/// 127.0.0.1, killed on drop. `tests/support/rtsp_server.py` is the server.
pub struct RtspServer {
    pub port: u16,
    pub media: RtspMedia,
    child: Option<Child>,
}

impl RtspServer {
    pub fn start(media: RtspMedia) -> RtspServer {
        Self::start_on(free_port(), media)
    }

    /// Starts on `port` and returns once the port accepts connections.
    pub fn start_on(port: u16, media: RtspMedia) -> RtspServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/rtsp_server.py");
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(&script).arg("--port").arg(port.to_string());
        match &media {
            RtspMedia::TestPattern { fps, width, height } => {
                cmd.args(["--source", "test", "--fps", &fps.to_string()])
                    .args(["--size", &format!("{width}x{height}")]);
            }
            RtspMedia::File(p) => {
                cmd.arg("--source").arg(p);
            }
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("/usr/bin/python3 with gi and GstRtspServer must be installed (make setup)");
        let mut server = RtspServer {
            port,
            media,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("the RTSP server exited ({status}) before listening on port {port}");
            }
            assert!(
                Instant::now() < deadline,
                "the RTSP server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }

    /// Kills the server at once (SIGKILL: connections drop without a TEARDOWN).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing more is sent.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("server running").id();
        let ok = Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    }

    /// Starts the same media on the same port again.
    pub fn restart(&mut self) {
        self.kill();
        *self = Self::start_on(self.port, self.media.clone());
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Lines a child process writes to stderr, collected on a thread, searchable while it runs.
pub struct LogWatch {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl LogWatch {
    pub fn new(stderr: std::process::ChildStderr) -> LogWatch {
        use std::io::BufRead;
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push(line);
            }
        });
        LogWatch { lines }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits (bounded) until a line after the first `from` lines satisfies `pred`; its index.
    pub fn wait_for(
        &self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, l)| pred(l))
                .map(|(i, _)| i)
            {
                return Some(i);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Shows the library's logs in a failing test's output (`RUST_LOG` filters, default `info`).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// A real HTTP MJPEG camera (`tests/support/mjpeg_server.py`: GStreamer JPEG frames in
/// a multipart/x-mixed-replace response) on 127.0.0.1, killed on drop.
pub struct MjpegServer {
    pub port: u16,
    child: Child,
}

impl MjpegServer {
    pub fn start(fps: u32) -> MjpegServer {
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/mjpeg_server.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(&script)
            .args(["--port", &port.to_string(), "--fps", &fps.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("/usr/bin/python3 with gi must be installed (make setup)");
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the MJPEG server exited ({status}) before listening on port {port}");
            }
            assert!(Instant::now() < deadline, "the MJPEG server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        MjpegServer { port, child }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/stream.mjpg", self.port)
    }
}

impl Drop for MjpegServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the daemon on `cfg` to its end with `RUST_LOG=rust_log`; asserts it exited 0
/// without a panic and returns its stderr.
pub fn run_daemon_to_end(cfg: &Path, rust_log: &str) -> String {
    let out = Command::new(bin())
        .args(["run", "--config"])
        .arg(cfg)
        .env("RUST_LOG", rust_log)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "daemon failed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// The number just before `what` in a summary line ("… 42 analysed …" → 42).
pub fn number_before(line: &str, what: &str) -> u64 {
    let i = line
        .find(what)
        .unwrap_or_else(|| panic!("{what} in {line}"));
    line[..i]
        .trim_end()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// (seq, id) of the events waiting in an outbox file, in seq order.
pub fn stored_events(outbox: &Path) -> Vec<(i64, String)> {
    let conn = rusqlite::Connection::open(outbox).unwrap();
    let mut stmt = conn
        .prepare("SELECT seq, id FROM outbox ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Publishes one message (QoS 1) and returns once the broker acknowledged it.
pub fn publish(port: u16, topic: &str, payload: &[u8]) {
    publish_as(port, None, topic, payload, false)
}

/// [`publish`], logging in with `login` (username, password), retained if `retain`.
/// (With MQTT 3.1.1 a broker acknowledges a publish its ACL denies, and drops it.)
pub fn publish_as(
    port: u16,
    login: Option<(&str, &str)>,
    topic: &str,
    payload: &[u8],
    retain: bool,
) {
    use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};
    let id = format!("test-pub-{}-{}", std::process::id(), free_port());
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_max_packet_size(8 << 20, 8 << 20);
    if let Some((user, password)) = login {
        opts.set_credentials(user, password);
    }
    let (client, mut conn) = Client::new(opts, 4);
    client
        .publish(topic, QoS::AtLeastOnce, retain, payload.to_vec())
        .unwrap();
    for n in conn.iter() {
        match n {
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                client.disconnect().unwrap();
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(e) => panic!("publishing to {topic}: {e}"),
        }
    }
}

/// A spawned daemon that is killed if the test ends (or fails) while it runs.
/// Starts `streetwatch run --config cfg` (RUST_LOG=warn, stderr discarded); killed
/// when dropped.
pub fn spawn_daemon(cfg: &Path) -> Daemon {
    Daemon(
        Command::new(bin())
            .args(["run", "--config"])
            .arg(cfg)
            .env("RUST_LOG", "warn")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

pub struct Daemon(pub Child);

impl std::ops::Deref for Daemon {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs a source to its end (bounded by `limit` frames and `timeout`); its frames and stats.
pub fn run_source(
    opts: streetwatch::source::runner::SourceOptions,
    limit: usize,
    timeout: Duration,
) -> (
    Vec<streetwatch::source::Frame>,
    std::sync::Arc<streetwatch::monitor::CameraStats>,
) {
    let slot = streetwatch::source::FrameSlot::new(opts.slot_mode());
    let stats = std::sync::Arc::new(streetwatch::monitor::CameraStats::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let thread = {
        let (slot, stats, stop) = (slot.clone(), stats.clone(), stop.clone());
        std::thread::spawn(move || streetwatch::source::runner::run(&opts, &slot, &stats, &stop))
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let mut frames = Vec::new();
    while frames.len() < limit {
        let left = deadline.saturating_duration_since(Instant::now());
        match rt.block_on(async { tokio::time::timeout(left, slot.take()).await }) {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => break,
            Err(_) => panic!("source still running after {timeout:?}"),
        }
    }
    stop.cancel();
    slot.close();
    thread.join().expect("the runner must not panic");
    (frames, stats)
}

/// Source options for tests: quick stall detection (2 s) and reconnects (0.25–2 s).
pub fn source_options(
    camera: &str,
    url: &str,
    fps: f64,
) -> streetwatch::source::runner::SourceOptions {
    streetwatch::source::runner::SourceOptions {
        camera: camera.into(),
        url: url.into(),
        fps,
        looping: false,
        realtime: false,
        stall_timeout: Duration::from_secs(2),
        reconnect_min: Duration::from_millis(250),
        reconnect_max: Duration::from_secs(2),
        hwaccel: streetwatch::config::HwAccel::None,
        rtsp_transport: streetwatch::config::RtspTransport::Tcp,
        max_pixels: 3840 * 2160,
        decode: streetwatch::config::DecodeMode::Sampled,
        decoder_threads: 0,
        grey_width: None,
    }
}

/// What a service manager hears: a datagram socket (`$NOTIFY_SOCKET`) bound in a
/// temporary folder, read on a thread; every message is kept with when it came.
pub struct NotifySocket {
    pub path: PathBuf,
    notes: std::sync::Arc<std::sync::Mutex<Vec<(Instant, String)>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    pub fn bind() -> NotifySocket {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let notes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (sink, done) = (notes.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 8192];
            while !done.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    sink.lock().unwrap().push((Instant::now(), text));
                }
            }
        });
        NotifySocket {
            path,
            notes,
            stop,
            _dir: dir,
        }
    }

    /// Every message so far, in arrival order.
    pub fn notes(&self) -> Vec<(Instant, String)> {
        self.notes.lock().unwrap().clone()
    }

    /// Waits (bounded) for a message after the first `from` with a line equal to
    /// `line` (`READY=1`) or starting with it (`STATUS=`); its index.
    pub fn wait_for(&self, from: usize, timeout: Duration, line: &str) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self
                .notes()
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, (_, m))| m.lines().any(|l| l.starts_with(line)))
                .map(|(i, _)| i)
            {
                return Some(i);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// When each `WATCHDOG=1` after the first `from` messages came.
    pub fn pings(&self, from: usize) -> Vec<Instant> {
        self.notes()
            .iter()
            .skip(from)
            .filter(|(_, m)| m.lines().any(|l| l == "WATCHDOG=1"))
            .map(|(t, _)| *t)
            .collect()
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
