//! The Debian package, built, inspected and installed.
//!
//! `deploy/deb.sh` (cargo-deb) packages the binary under test with the pinned
//! ONNX Runtime and default model. `dpkg-deb` shows its files, conffile,
//! dependencies and maintainer scripts. Then `dpkg` installs it for real into
//! a scratch root: an overlay of this machine's `/` in a private mount
//! namespace (root only: CI runs as root), so nothing on the machine changes
//! and the overlay is gone when the test ends. There the maintainer scripts
//! have made the `streetwatch` user and its state folder, `systemd-analyze
//! verify` accepts the installed unit, and the installed binary, with `HOME`
//! empty and no `--config`, reads `/etc/streetwatch/streetwatch.toml`, finds
//! the packaged model and library, and delivers events to a real mosquitto as
//! the `streetwatch` user under the unit's file-system hardening (read-only
//! system, no home, private /tmp, no new privileges, no memory both writable
//! and executable). Removing keeps the conffile; purging removes it and the
//! outbox.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A command run as root: directly when the test is root, else through `sudo -n`.
fn as_root(program: &str) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", program]);
        c
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// This machine's `/` as a writable overlay in a mount namespace of its own,
/// held open by a sleeping process; commands run in it through `nsenter` and
/// `chroot`. Dropping it ends the namespace and everything written in it.
struct ScratchRoot {
    holder: Child,
    merged: PathBuf,
    _dir: tempfile::TempDir,
}

impl ScratchRoot {
    fn new() -> ScratchRoot {
        let dir = tempfile::tempdir().unwrap();
        let ns = dir.path().join("ns");
        std::fs::create_dir(&ns).unwrap();
        let ns = ns.display();
        // The overlay's upper layer lives on a tmpfs: a layer under `/` would overlap it.
        let script = format!(
            "set -e
             mount -t tmpfs tmpfs {ns}
             mkdir {ns}/upper {ns}/work {ns}/merged
             mount -t overlay overlay -o lowerdir=/,upperdir={ns}/upper,workdir={ns}/work {ns}/merged
             for d in proc sys dev; do mount --rbind /$d {ns}/merged/$d; done
             mount -t tmpfs tmpfs {ns}/merged/run
             echo ready
             exec sleep 3600"
        );
        let mut holder = as_root("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux)");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.trim() != "ready" {
            let out = holder.wait_with_output().unwrap();
            panic!(
                "cannot make a scratch root (needs root, or sudo -n): {}",
                text(&out)
            );
        }
        ScratchRoot {
            holder,
            merged: PathBuf::from(format!("{ns}/merged")),
            _dir: dir,
        }
    }

    /// Runs `script` with `/bin/sh` inside the scratch root, with a bare environment.
    fn sh(&self, script: &str) -> Output {
        as_root("nsenter")
            .args(["--target", &self.holder.id().to_string(), "--mount", "--"])
            .arg("chroot")
            .arg(&self.merged)
            .args([
                "/usr/bin/env",
                "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME=",
            ])
            .args(["DEBIAN_FRONTEND=noninteractive", "/bin/sh", "-c", script])
            .output()
            .unwrap()
    }

    /// [`ScratchRoot::sh`], which must succeed; its stdout.
    fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(out.status.success(), "{script}\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for ScratchRoot {
    fn drop(&mut self) {
        let _ = as_root("kill").arg(self.holder.id().to_string()).status();
        let _ = self.holder.wait();
    }
}

/// A pinned value from deploy/versions.env.
fn pin(name: &str) -> String {
    let text = include_str!("../deploy/versions.env");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} is not in deploy/versions.env"))
        .to_string()
}

fn model_pin() -> String {
    include_str!("../models/nanodet-m-416.sha256")
        .lines()
        .find(|l| l.ends_with("nanodet-m-416.onnx"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string()
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let out = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .unwrap();
    assert!(out.status.success(), "dpkg-deb {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn build_package(out: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/deb.sh");
    let built = Command::new(&script)
        .args(["--binary", common::bin(), "--fast", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(built.status.success(), "deploy/deb.sh: {}", text(&built));
    let deb = PathBuf::from(String::from_utf8_lossy(&built.stdout).trim());
    let arch = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .unwrap();
    let arch = String::from_utf8_lossy(&arch.stdout).trim().to_string();
    let name = format!("streetwatch_{}-1_{arch}.deb", env!("CARGO_PKG_VERSION"));
    assert_eq!(deb.file_name().unwrap().to_str(), Some(name.as_str()));
    deb
}

fn inspect(deb: &Path, dir: &Path) {
    let info = dpkg_deb(&["--info"], deb);
    for needle in [
        "Package: streetwatch",
        "libavcodec",
        "libavformat",
        "libavutil",
        "libswscale",
        "libc6",
        "libstdc++6",
        "adduser",
        "conffiles",
        "postinst",
        "postrm",
        "prerm",
    ] {
        assert!(info.contains(needle), "{needle} in:\n{info}");
    }
    let depends = info
        .lines()
        .find(|l| l.trim_start().starts_with("Depends:"))
        .unwrap();
    // Shared-library dependencies come with versions from dpkg-shlibdeps.
    assert!(depends.contains("libavcodec59 (>="), "{depends}");
    let control = dir.join("control");
    let out = Command::new("dpkg-deb")
        .arg("--control")
        .arg(deb)
        .arg(&control)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let read = |f: &str| std::fs::read_to_string(control.join(f)).unwrap();
    assert_eq!(
        read("conffiles").trim(),
        "/etc/streetwatch/streetwatch.toml"
    );
    let postinst = read("postinst");
    for needle in [
        "adduser --system",
        "video render",
        "/var/lib/streetwatch",
        "deb-systemd-helper",
    ] {
        assert!(
            postinst.contains(needle),
            "{needle} in postinst:\n{postinst}"
        );
    }
    assert!(read("postrm").contains("purge"));

    let contents = dpkg_deb(&["--contents"], deb);
    for (path, mode) in [
        ("./usr/bin/streetwatch", "-rwxr-xr-x"),
        (
            "./usr/lib/streetwatch/libonnxruntime.so.1.31.1",
            "-rw-r--r--",
        ),
        (
            "./usr/lib/streetwatch/models/nanodet-m-416.onnx",
            "-rw-r--r--",
        ),
        (
            "./usr/lib/streetwatch/models/nanodet-m-416.toml",
            "-rw-r--r--",
        ),
        ("./etc/streetwatch/streetwatch.toml", "-rw-r--r--"),
        ("./usr/lib/systemd/system/streetwatch.service", "-rw-r--r--"),
        ("./usr/share/doc/streetwatch/README.md", "-rw-r--r--"),
        // What a brain's integrator builds the central side from.
        ("./usr/share/doc/streetwatch/mqtt.md", "-rw-r--r--"),
        ("./usr/share/doc/streetwatch/deploy.md", "-rw-r--r--"),
        ("./usr/share/doc/streetwatch/asyncapi.yaml", "-rw-r--r--"),
        (
            "./usr/share/doc/streetwatch/event.schema.json",
            "-rw-r--r--",
        ),
        ("./usr/share/doc/streetwatch/info.schema.json", "-rw-r--r--"),
        (
            "./usr/share/doc/streetwatch/stats.schema.json",
            "-rw-r--r--",
        ),
    ] {
        let line = contents
            .lines()
            .find(|l| l.ends_with(path))
            .unwrap_or_else(|| panic!("{path} not in the package:\n{contents}"));
        assert!(line.starts_with(mode), "{line}");
    }

    // What is packaged is what is pinned.
    let files = dir.join("files");
    let out = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(&files)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let arch = std::env::consts::ARCH;
    assert_eq!(
        sha256(&files.join("usr/lib/streetwatch/libonnxruntime.so.1.31.1")),
        pin(&format!("ORT_LIB_SHA256_{arch}"))
    );
    assert_eq!(
        sha256(&files.join("usr/lib/streetwatch/models/nanodet-m-416.onnx")),
        model_pin()
    );
}

/// Runs the daemon as the unit does, as far as a mount namespace can say so:
/// as `streetwatch`, read-only system but the state folder, home folders empty
/// and read-only, a private /tmp, no new privileges, W^X memory (PR_SET_MDWE).
const HARDENED_RUN: &str = r#"
set -e
cat > /srv/mdwe.py <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    print("mdwe: not available: " + os.strerror(ctypes.get_errno()), file=sys.stderr)
else:
    print("mdwe: on", file=sys.stderr)
os.execv(sys.argv[1], sys.argv[1:])
PY
exec unshare --mount --propagation private sh -c '
    set -e
    mount --bind /var/lib/streetwatch /var/lib/streetwatch
    mount -o remount,bind,ro /
    for d in /root /home; do mount -t tmpfs -o ro,mode=0755 tmpfs $d; done
    mount -t tmpfs tmpfs /tmp
    if touch /usr/lib/probe 2>/dev/null; then echo "the system is writable" >&2; exit 9; fi
    if ls /root/.cache >/dev/null 2>&1; then echo "home folders are visible" >&2; exit 9; fi
    exec setpriv --reuid=streetwatch --regid=streetwatch --init-groups --no-new-privs -- \
        python3 /srv/mdwe.py /usr/bin/streetwatch run'
"#;

#[test]
fn the_package_installs_runs_as_its_user_and_purges() {
    let work = tempfile::tempdir().unwrap();
    let deb = build_package(work.path());
    inspect(&deb, work.path());

    let root = ScratchRoot::new();
    root.ok(&format!("dpkg -i {}", deb.display()));

    // The maintainer scripts' work.
    let user = root.ok("getent passwd streetwatch");
    assert!(user.contains(":/var/lib/streetwatch:"), "{user}");
    let groups = root.ok("id -nG streetwatch");
    assert!(groups.split_whitespace().any(|g| g == "video"), "{groups}");
    assert_eq!(
        root.ok("stat -c %U:%G:%a /var/lib/streetwatch /etc/streetwatch/mqtt-password"),
        "streetwatch:streetwatch:750\nroot:root:600\n"
    );

    // systemd accepts the installed unit.
    let verify = root.sh("systemd-analyze verify /usr/lib/systemd/system/streetwatch.service");
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(
        !String::from_utf8_lossy(&verify.stderr).contains("streetwatch.service"),
        "{}",
        text(&verify)
    );

    // HOME empty: the packaged library and model are found.
    let version = root.ok("streetwatch --version");
    assert!(
        version.contains("ONNX Runtime 1.31.1 (/usr/lib/streetwatch/libonnxruntime.so.1.31.1)"),
        "{version}"
    );
    assert!(
        version.contains(&format!(
            "default model /usr/lib/streetwatch/models/nanodet-m-416.onnx sha256 {}",
            model_pin()
        )),
        "{version}"
    );
    // The shipped configuration (a camera, disabled) checks out as it is.
    let checked = root.ok("streetwatch check-config");
    assert!(
        checked.starts_with("/etc/streetwatch/streetwatch.toml: ok")
            && checked.contains("/usr/lib/streetwatch/models/nanodet-m-416.onnx"),
        "{checked}"
    );

    // A configuration of this box: a clip, a real broker; run as the unit would.
    let broker = common::Mosquitto::start();
    let events = common::Subscriber::connect(broker.port, "swpkg/pkg-node/events/#");
    root.ok(&format!(
        "cp {clip} /srv/clip.mp4 && cat > /etc/streetwatch/streetwatch.toml <<'EOF'
[node]
id = \"pkg-node\"
[mqtt]
url = \"{url}\"
topic_prefix = \"swpkg\"
[[camera]]
id = \"campus\"
url = \"/srv/clip.mp4\"
fps = 2
[[camera.zone]]
id = \"all\"
polygon = [[0, 0], [1, 0], [1, 1], [0, 1]]
[camera.zone.congestion]
levels = {{ light = 1, moderate = 4, heavy = 8 }}
min_duration_s = 0
EOF",
        clip = common::media("vtest.mp4").display(),
        url = broker.url()
    ));
    let run = root.sh(HARDENED_RUN);
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{}", text(&run));
    if !stderr.contains("mdwe: on") {
        eprintln!("this kernel has no PR_SET_MDWE: W^X memory not checked ({stderr})");
    }
    let summary = stderr
        .lines()
        .find(|l| l.starts_with("streetwatch: summary:"))
        .unwrap_or_else(|| panic!("no summary: {stderr}"));
    let stored = common::number_before(summary, "events (");
    assert!(stored > 0, "{summary}");
    assert!(
        summary.contains(&format!("({stored} delivered, 0 left in outbox)")),
        "{summary}"
    );
    assert!(
        events.recv(Duration::from_secs(10)).is_some(),
        "no event on the broker"
    );
    assert!(
        root.ok("ls /var/lib/streetwatch").contains("outbox.sqlite"),
        "the outbox lives in the state folder"
    );

    // Remove keeps the conffile; purge takes it, the password file and the outbox.
    root.ok("dpkg -r streetwatch");
    assert_eq!(
        root.ok("test ! -e /usr/bin/streetwatch && ls /etc/streetwatch"),
        "mqtt-password\nstreetwatch.toml\n"
    );
    root.ok("dpkg -P streetwatch");
    root.ok("test ! -e /etc/streetwatch && test ! -e /var/lib/streetwatch");
}
