//! The `streetwatch` command line: run the daemon, check a config, try the detector, watch events.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

mod cli;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use streetwatch::config::Config;
use streetwatch::detect::{self, DetectError, DetectorOptions};
use streetwatch::logs::{self, say};
use streetwatch::mqtt::commands::{Command as NodeCommand, ControlRequest};
use streetwatch::node::{self, Hooks, StartError, options, systemd};
use streetwatch::replay::ReplayError;
use streetwatch::sizing::SizingError;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Where an installed box keeps its configuration.
const DEFAULT_CONFIG: &str = "/etc/streetwatch/streetwatch.toml";

#[derive(Parser)]
#[command(
    name = "streetwatch",
    about = "Edge daemon for street cameras: video → ONNX detector → zone rules → MQTT events",
    disable_version_flag = true,
    arg_required_else_help = true
)]
struct Cli {
    /// Log format on stderr (`json`: every line on stderr is a JSON object).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Print the version and git commit, the ONNX Runtime and FFmpeg (libavcodec)
    /// versions found, and the default model's sha256.
    #[arg(short = 'V', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The configuration file of `run`, `check-config`, `preview` and `replay`.
#[derive(clap::Args)]
struct ConfigFile {
    /// The configuration file.
    #[arg(long, short, env = "STREETWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        #[command(flatten)]
        config: ConfigFile,
        /// Touch this file at every check that finds the detector and the publisher
        /// moving (for `streetwatch health`, e.g. a container's HEALTHCHECK).
        #[arg(long, env = "STREETWATCH_HEALTH_FILE")]
        health_file: Option<PathBuf>,
    },
    /// Exit 0 if a running daemon's health file shows it moving recently, else 1.
    Health {
        #[arg(long, env = "STREETWATCH_HEALTH_FILE")]
        health_file: PathBuf,
        /// Seconds since the last check that found every stage moving, at most.
        #[arg(long, default_value_t = 60.0)]
        max_age: f64,
    },
    /// Check a configuration (and its model) without starting cameras. Exit code 2 if wrong.
    CheckConfig {
        #[command(flatten)]
        config: ConfigFile,
        /// Also connect to the broker once (address, TLS, credentials); exit code 1 if that fails.
        #[arg(long)]
        connect: bool,
    },
    /// Run the detector on one still image and print what it finds (source pixels).
    Detect {
        image: PathBuf,
        /// Use this config's [model] and [detector] settings.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Model file (default: the configured one, else the default model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also write the image with the detections drawn (heads masked) as this JPEG.
        #[arg(long, value_name = "OUT.jpg")]
        annotate: Option<PathBuf>,
    },
    /// Draw a camera's zones, rules and detections on one of its frames (a JPEG).
    Preview {
        #[command(flatten)]
        config: ConfigFile,
        /// The camera (its `id`).
        #[arg(long)]
        camera: String,
        /// Where to write the JPEG (default: preview-<camera>.jpg).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Draw on this image instead of a frame from the camera's source.
        #[arg(long, value_name = "IMAGE")]
        frame: Option<PathBuf>,
    },
    /// Run the cameras on their files with no broker and no outbox: the events `run`
    /// would publish, as JSON lines, and optionally an annotated H.264 video.
    Replay {
        #[command(flatten)]
        config: ConfigFile,
        /// Only this camera (default: every enabled one).
        #[arg(long)]
        camera: Option<String>,
        /// Read this file instead of the camera's `url` (one camera).
        #[arg(long, value_name = "FILE")]
        clip: Option<PathBuf>,
        /// Write the events here (default: stdout), one JSON object a line.
        #[arg(long, value_name = "FILE")]
        events_out: Option<PathBuf>,
        /// Also write each event's evidence JPEG here, as `<event id>.jpg`.
        #[arg(long, value_name = "DIR")]
        evidence_dir: Option<PathBuf>,
        /// Draw every analysed frame into this H.264 video (one camera).
        #[arg(long, value_name = "OUT.mp4")]
        annotate: Option<PathBuf>,
    },
    /// Describe a model: inputs, outputs, detected format, labels, execution providers, speed.
    ProbeModel {
        /// The .onnx file.
        path: PathBuf,
        /// Manifest (default: `<model>.toml` beside it, built in, or the model's metadata).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Use this config's [detector] settings (library, threads, providers).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Timed inferences on a blank frame.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Measure what each stage of the configured cameras costs on this box, and how many
    /// such cameras it sustains without drops.
    Bench {
        #[command(flatten)]
        config: ConfigFile,
        /// Seconds of measuring per camera.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Play this video file in place of every camera's source.
        #[arg(long)]
        clip: Option<PathBuf>,
    },
    /// Subscribe to a broker and print events as they arrive, one line each.
    Tail {
        /// Broker, e.g. mqtt://127.0.0.1:1883
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "streetwatch")]
        prefix: String,
        /// Node id to follow (`+` for all).
        #[arg(long, default_value = "+")]
        node: String,
        /// Print each event's JSON as received instead of a summary line.
        #[arg(long)]
        json: bool,
        /// Exit after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
}

/// `--log-format json` as given on the command line, before it could be parsed.
fn json_asked() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--log-format=json")
        || args
            .windows(2)
            .any(|w| w[0] == "--log-format" && w[1] == "json")
}

fn main() -> ExitCode {
    streetwatch::memory::tune();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if json_asked() && e.use_stderr() => {
            logs::set_json(true);
            let text = e.kind().to_string();
            say(
                "ERROR",
                &format!("error: {text}"),
                serde_json::json!({"usage": e.to_string().trim()}),
            );
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    logs::set_json(cli.log_format == LogFormat::Json);
    if cli.version {
        print!("{}", streetwatch::about::report());
        return ExitCode::SUCCESS;
    }
    let Some(command) = cli.command else {
        say(
            "ERROR",
            "error: a command is needed (see --help)",
            serde_json::json!({}),
        );
        return ExitCode::from(2);
    };
    logs::init();
    let result = match command {
        Command::Run {
            config,
            health_file,
        } => cmd_run(config.config, health_file),
        Command::Health {
            health_file,
            max_age,
        } => cmd_health(health_file, max_age),
        Command::CheckConfig { config, connect } => cmd_check(config.config, connect),
        Command::Detect {
            image,
            config,
            model,
            json,
            annotate,
        } => cli::detect::run(image, config, model, json, annotate),
        Command::Preview {
            config,
            camera,
            output,
            frame,
        } => cli::preview::run(cli::preview::Args {
            config: config.config,
            camera,
            output,
            frame,
        }),
        Command::Replay {
            config,
            camera,
            clip,
            events_out,
            evidence_dir,
            annotate,
        } => cli::replay::run(cli::replay::Args {
            config: config.config,
            camera,
            clip,
            events_out,
            evidence_dir,
            annotate,
        }),
        Command::ProbeModel {
            path,
            manifest,
            config,
            runs,
        } => cmd_probe(path, manifest, config, runs),
        Command::Bench {
            config,
            seconds,
            clip,
        } => cmd_bench(config.config, seconds, clip),
        Command::Tail {
            url,
            prefix,
            node,
            json,
            count,
        } => cmd_tail(url, prefix, node, json, count),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = if is_usage_error(&err) { 2 } else { 1 };
            say(
                "ERROR",
                &format!("error: {err:#}"),
                serde_json::json!({"exit_code": code}),
            );
            ExitCode::from(code)
        }
    }
}

/// Configuration and model problems exit with 2: the box needs fixing, not restarting.
/// An outbox problem that may pass (a lock held, a full disk) exits with 1, so the
/// service manager tries again.
fn is_usage_error(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.is::<streetwatch::config::ConfigError>()
            || e.is::<DetectError>()
            || e.is::<streetwatch::draw::DrawError>()
            || match e.downcast_ref::<StartError>() {
                Some(StartError::Config(_) | StartError::Detector(_)) => true,
                Some(StartError::Outbox(o)) => !o.may_pass(),
                None => false,
            }
            || matches!(
                e.downcast_ref::<ReplayError>(),
                Some(
                    ReplayError::Config(_)
                        | ReplayError::Start(StartError::Config(_) | StartError::Detector(_))
                )
            )
            || matches!(
                e.downcast_ref::<SizingError>(),
                Some(SizingError::Detector(_) | SizingError::NoCamera)
            )
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn cmd_bench(config: PathBuf, seconds: f64, clip: Option<PathBuf>) -> anyhow::Result<()> {
    if !(seconds > 0.0 && seconds.is_finite()) {
        anyhow::bail!("--seconds {seconds}: give a number of seconds above 0");
    }
    let config = Config::load(&config)?;
    let report = streetwatch::sizing::measure(&config, seconds, clip.as_deref())?;
    print!("{report}");
    Ok(())
}

fn cmd_health(file: PathBuf, max_age_s: f64) -> anyhow::Result<()> {
    let max_age = Duration::try_from_secs_f64(max_age_s)
        .map_err(|_| anyhow::anyhow!("--max-age {max_age_s}: not a number of seconds"))?;
    match systemd::health(&file, max_age, std::time::SystemTime::now()) {
        Ok(line) => {
            println!("healthy: {line}");
            Ok(())
        }
        Err(why) => {
            println!("unhealthy: {why}");
            std::process::exit(1);
        }
    }
}

fn cmd_run(config_path: PathBuf, health_file: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    let rt = runtime()?;
    let summary = rt.block_on(async {
        let shutdown = CancellationToken::new();
        {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("shutting down (a second signal exits at once)");
                shutdown.cancel();
                wait_for_signal().await;
                say(
                    "ERROR",
                    "second signal, exiting now",
                    serde_json::json!({"exit_code": 130}),
                );
                std::process::exit(130);
            });
        }
        let (commands, commands_rx) = mpsc::channel(4);
        let hangup = signal(SignalKind::hangup()).context("installing a SIGHUP handler")?;
        tokio::spawn(reload_on_hangup(hangup, commands));
        let hook = Box::new(|ev: &streetwatch::event::Event| {
            tracing::info!(
                seq = ev.seq,
                camera = %ev.camera,
                zone = %ev.zone,
                r#type = %ev.kind,
                phase = ev.phase.as_str(),
                count = ev.metrics.get("count").copied().unwrap_or(0.0),
                "event stored"
            );
        });
        let hooks = Hooks {
            commands: Some(commands_rx),
            manager: systemd::Manager::from_env().with_health_file(health_file),
            ..Hooks::new(shutdown, hook)
        };
        anyhow::Ok(node::run(config, hooks).await?)
    })?;
    let t = summary.total();
    say(
        "INFO",
        &format!(
            "summary: {} cameras, {} frames decoded, {} analysed ({} dropped, {} decode errors), {} detections, {} events ({} delivered, {} left in outbox), mean inference {:.1} ms, wall {:.1} s",
            summary.cameras.len(),
            t.frames_decoded,
            t.frames_analysed,
            t.frames_dropped,
            t.decode_errors,
            t.detections,
            t.events,
            summary.publisher.acked,
            summary.publisher.left_in_outbox,
            t.mean_inference_ms(),
            summary.wall.as_secs_f64()
        ),
        serde_json::json!({
            "summary": "node",
            "cameras": summary.cameras.len(),
            "totals": t,
            "delivered": summary.publisher.acked,
            "left_in_outbox": summary.publisher.left_in_outbox,
            "mean_inference_ms": t.mean_inference_ms(),
            "inference_ms_p50": summary.inference.quantile_ms(0.5),
            "inference_ms_p99": summary.inference.quantile_ms(0.99),
            "latency_ms_p50": summary.latency.quantile_ms(0.5),
            "latency_ms_p99": summary.latency.quantile_ms(0.99),
            "wall_s": summary.wall.as_secs_f64(),
        }),
    );
    for ((id, s), (_, state)) in summary.cameras.iter().zip(&summary.states) {
        // Latency is measured only where capture time is wall-clock time (live, real-time).
        let latency = if s.latency_frames > 0 {
            format!(
                "capture-to-detection latency mean {:.1} ms max {:.1} ms",
                s.mean_latency_ms(),
                s.latency_max_us as f64 / 1000.0
            )
        } else {
            "capture-to-detection latency not measured (file read as fast as analysed)".into()
        };
        say(
            "INFO",
            &format!(
                "camera {id}: {state}, {} frames decoded, {} analysed, {} held by the motion gate, {} dropped, {} decode errors, {} reconnects, {latency}",
                s.frames_decoded,
                s.frames_analysed,
                s.frames_gated,
                s.frames_dropped,
                s.decode_errors,
                s.reconnects,
            ),
            serde_json::json!({
                "summary": "camera",
                "camera": id,
                "state": state.to_string(),
                "counters": s,
            }),
        );
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// SIGHUP reloads the configuration exactly as the MQTT `reload` command does: the
/// same command goes to the node, which logs what it started, stopped or restarted.
async fn reload_on_hangup(mut hangup: Signal, commands: mpsc::Sender<ControlRequest>) {
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration");
        let (reply, answer) = oneshot::channel();
        let request = ControlRequest {
            command: NodeCommand::Reload,
            reply,
        };
        if commands.send(request).await.is_err() {
            break;
        }
        match answer.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "reload refused"),
            Err(_) => break,
        }
    }
}

async fn wait_for_signal() {
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn cmd_check(config_path: PathBuf, connect: bool) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    let mqtt = options::publisher(
        &config,
        tokio::sync::watch::channel(Vec::new()).1,
        streetwatch::clock::system(),
    )?;
    options::check_files(&config)?;
    let detector = node::open_detector(&config)?;
    if connect {
        runtime()?
            .block_on(streetwatch::mqtt::probe_connection(
                &mqtt,
                Duration::from_secs(10),
            ))
            .map_err(|e| anyhow::anyhow!(e))?;
        println!(
            "{}: broker {} accepted the connection",
            config_path.display(),
            config.mqtt.url
        );
    }
    println!(
        "{}: ok — node {:?}, {} camera(s), model {} ({}, {}), on {}",
        config_path.display(),
        config.node.id,
        config.cameras.len(),
        detector.manifest().name,
        detector.model_path().display(),
        detector.plan().format().as_str(),
        detector.provider()
    );
    Ok(())
}

fn cmd_probe(
    path: PathBuf,
    manifest: Option<PathBuf>,
    config: Option<PathBuf>,
    runs: usize,
) -> anyhow::Result<()> {
    let mut opts = match &config {
        Some(p) => options::detector(&Config::load(p)?),
        None => DetectorOptions::for_model(&path),
    };
    opts.model = path;
    opts.manifest = manifest;
    print!("{}", detect::probe::report(&opts, runs)?);
    Ok(())
}

fn cmd_tail(
    url: String,
    prefix: String,
    node: String,
    json: bool,
    count: Option<u64>,
) -> anyhow::Result<()> {
    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
    let broker =
        streetwatch::mqtt::BrokerUrl::parse(&url).map_err(|m| anyhow::anyhow!("--url: {m}"))?;
    let id = format!("streetwatch-tail-{}", std::process::id());
    let mut opts = MqttOptions::new(id, broker.host, broker.port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(16 << 20, 16 << 20);
    if broker.tls {
        opts.set_transport(rumqttc::Transport::tls_with_default_config());
    }
    let (client, mut connection) = Client::new(opts, 16);
    let topic = format!("{prefix}/{node}/events/#");
    let mut seen = 0u64;
    for notification in connection.iter() {
        match notification {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                client.subscribe(&topic, QoS::AtLeastOnce)?;
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                say(
                    "INFO",
                    &format!("listening on {topic}"),
                    serde_json::json!({}),
                );
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if json {
                    println!("{}", String::from_utf8_lossy(&p.payload));
                } else {
                    println!("{}", describe_event(&p.topic, &p.payload));
                }
                seen += 1;
                if count.is_some_and(|c| seen >= c) {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                say(
                    "WARN",
                    &format!("broker {url}: {e}; retrying"),
                    serde_json::json!({}),
                );
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    Ok(())
}

/// One readable line per event: time, camera/zone, type and phase, the numbers, the objects.
fn describe_event(topic: &str, payload: &[u8]) -> String {
    let Ok(ev) = serde_json::from_slice::<streetwatch::event::Event>(payload) else {
        return format!("{topic}: {}", String::from_utf8_lossy(payload));
    };
    let mut classes = std::collections::BTreeMap::<&str, usize>::new();
    for o in &ev.objects {
        *classes.entry(o.class.as_str()).or_default() += 1;
    }
    let objects: Vec<String> = classes.iter().map(|(c, n)| format!("{n} {c}")).collect();
    let metrics: Vec<String> = ev
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .chain(
            ev.metrics
                .iter()
                .map(|(k, v)| format!("{k}={}", (v * 100.0).round() / 100.0)),
        )
        .collect();
    let objects = if objects.is_empty() {
        String::new()
    } else {
        format!("  [{}]", objects.join(", "))
    };
    format!(
        "{}  #{:<4} {}/{}  {} {:<6} t={:>6.1}s  {}{}",
        ev.ts,
        ev.seq,
        ev.camera,
        ev.zone,
        ev.kind,
        ev.phase.as_str(),
        ev.stream_time_s,
        metrics.join(" "),
        objects
    )
}
