//! TLS and mutual TLS against a real mosquitto with certificates made by
//! `openssl` here; a wrong CA fails with a clear error.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn openssl(dir: &Path, args: &[&str]) {
    common::output_ok(Command::new("openssl").args(args).current_dir(dir));
}

/// A CA, and a certificate + key signed by it for `name` (server or client).
fn make_ca(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
            "-subj",
            &format!("/CN={ca}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

fn make_cert(dir: &Path, ca: &str, name: &str, ext: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_ca(d, "city-ca");
        make_ca(d, "other-ca");
        make_cert(
            d,
            "city-ca",
            "broker",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
        make_cert(d, "city-ca", "pole", "extendedKeyUsage=clientAuth\n");
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A TLS listener on `tls_port` (client certificates required if `mutual`)
    /// plus a plaintext one on `plain_port` for the test's subscriber.
    fn broker(&self, tls_port: u16, plain_port: u16, mutual: bool) -> common::Mosquitto {
        let conf = format!(
            "allow_anonymous true\nlistener {plain_port} 127.0.0.1\nlistener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {mutual}\n",
            self.path("city-ca.pem"),
            self.path("broker.pem"),
            self.path("broker.key"),
        );
        common::Mosquitto::start_with(plain_port, &conf)
    }
}

fn config(tls_port: u16, mqtt_extra: &str, dir: &Path) -> std::path::PathBuf {
    config_with_camera(tls_port, mqtt_extra, dir, &dir.join("unused.mp4"))
}

fn config_with_camera(
    tls_port: u16,
    mqtt_extra: &str,
    dir: &Path,
    clip: &Path,
) -> std::path::PathBuf {
    common::write_config(
        dir,
        &format!(
            r#"
[node]
id = "tls-node"
[mqtt]
url = "mqtts://localhost:{tls_port}"
require_tls = true
{mqtt_extra}
[outbox]
path = "{}/outbox.sqlite"
[[camera]]
id = "cam"
url = "{}"
"#,
            dir.display(),
            clip.display()
        ),
    )
}

fn check_connect(cfg: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(common::bin())
        .args(["check-config", "--connect", "--config"])
        .arg(cfg)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tls_with_the_right_ca_connects_and_a_wrong_ca_is_a_clear_error() {
    common::default_model();
    let pki = Pki::new();
    let tls_port = common::free_port();
    let _broker = pki.broker(tls_port, common::free_port(), false);
    let dir = tempfile::tempdir().unwrap();

    let good = config(
        tls_port,
        &format!("ca_file = \"{}\"", pki.path("city-ca.pem")),
        dir.path(),
    );
    let (code, stdout, stderr) = check_connect(&good);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("accepted the connection"), "{stdout}");

    let wrong = config(
        tls_port,
        &format!("ca_file = \"{}\"", pki.path("other-ca.pem")),
        dir.path(),
    );
    let (code, _, stderr) = check_connect(&wrong);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("mqtts://localhost:{tls_port}")),
        "{stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("certificate"),
        "names the certificate problem: {stderr}"
    );
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    common::default_model();
    let pki = Pki::new();
    let tls_port = common::free_port();
    let plain_port = common::free_port();
    let _broker = pki.broker(tls_port, plain_port, true);
    let dir = tempfile::tempdir().unwrap();
    let ca = format!("ca_file = \"{}\"", pki.path("city-ca.pem"));

    let (code, _, stderr) = check_connect(&config(tls_port, &ca, dir.path()));
    assert_eq!(
        code,
        Some(1),
        "no client certificate must be refused: {stderr}"
    );

    let with_cert = format!(
        "{ca}\nclient_cert = \"{}\"\nclient_key = \"{}\"",
        pki.path("pole.pem"),
        pki.path("pole.key")
    );
    let cfg = config(tls_port, &with_cert, dir.path());
    let (code, stdout, stderr) = check_connect(&cfg);
    assert_eq!(code, Some(0), "{stdout}{stderr}");

    // The daemon itself over mutual TLS: it says `online` (retained) and, on its
    // clean exit, `offline` — seen by a plaintext subscriber on the same broker.
    let sub = common::Subscriber::connect(plain_port, "streetwatch/tls-node/status");
    let running = config_with_camera(
        tls_port,
        &with_cert,
        dir.path(),
        &common::media("vtest.avi"),
    );
    let mut child = common::Daemon(
        Command::new(common::bin())
            .args(["run", "--config"])
            .arg(&running)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let online = sub
        .recv(Duration::from_secs(20))
        .expect("status over mutual TLS");
    let v: serde_json::Value = serde_json::from_slice(&online.payload).unwrap();
    assert_eq!(v["state"], "online");
    common::signal(child.id(), "TERM");
    assert!(child.wait().unwrap().success());
    let offline = sub
        .recv(Duration::from_secs(10))
        .expect("offline on SIGTERM");
    let v: serde_json::Value = serde_json::from_slice(&offline.payload).unwrap();
    assert_eq!(v["state"], "offline");
}

#[test]
fn plaintext_is_refused_when_tls_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_config(
        dir.path(),
        "[node]\nid = \"n\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\nrequire_tls = true\n[[camera]]\nid = \"c\"\nurl = \"x.mp4\"\n",
    );
    let out = Command::new(common::bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("mqtt.url") && stderr.contains("require_tls"),
        "{stderr}"
    );
}
