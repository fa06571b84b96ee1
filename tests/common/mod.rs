//! Test harness: real peers (mosquitto started on a free loopback port), the
//! real model and media from the set-up cache, and the daemon binary itself.
#![allow(dead_code)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    child: Child,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("mosquitto.conf");
        let mut f = std::fs::File::create(&conf).unwrap();
        writeln!(
            f,
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false"
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed (make setup)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Mosquitto {
            port,
            child,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
        use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
        let id = format!("test-sub-{}-{}", std::process::id(), free_port());
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30));
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

/// Writes `text` as a config file in `dir`.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("streetwatch.toml");
    std::fs::write(&p, text).unwrap();
    p
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
