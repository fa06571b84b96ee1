//! `streetwatch replay`: the configured cameras on their files, events as JSON
//! lines, optionally an annotated video; a progress bar on a terminal, plain
//! lines otherwise.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use streetwatch::config::Config;
use streetwatch::replay::{self, Outputs, Progress};

pub struct Args {
    pub config: PathBuf,
    pub camera: Option<String>,
    pub clip: Option<PathBuf>,
    pub events_out: Option<PathBuf>,
    pub evidence_dir: Option<PathBuf>,
    pub annotate: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let plan = replay::plan(config, args.camera.as_deref(), args.clip.as_deref())?;
    // Events go to the file, else to stdout; progress to stderr.
    let mut sink: Box<dyn Write + Send> = match &args.events_out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout()),
    };
    if let Some(dir) = &args.evidence_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let evidence_dir = args.evidence_dir.clone();
    let mut events = |ev: &streetwatch::event::Event, jpeg: Option<&[u8]>| -> std::io::Result<()> {
        serde_json::to_writer(&mut sink, ev)?;
        sink.write_all(b"\n")?;
        match (&evidence_dir, jpeg) {
            (Some(dir), Some(jpeg)) => std::fs::write(dir.join(format!("{}.jpg", ev.id)), jpeg),
            _ => Ok(()),
        }
    };
    let mut report = Reporter::new(std::io::stderr().is_terminal());
    let mut progress = |p: &[Progress]| report.show(p);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let summary = rt.block_on(replay::run(
        plan,
        Outputs {
            events: &mut events,
            progress: &mut progress,
            annotate: args.annotate.clone(),
        },
    ))?;
    sink.flush().context("writing events")?;
    report.done();
    let analysed: u64 = summary.cameras.iter().map(|(_, s)| s.frames_analysed).sum();
    eprintln!(
        "replay: {} camera(s), {analysed} frames analysed, {} events{}{}, {:.1} s",
        summary.cameras.len(),
        summary.events,
        args.events_out
            .as_ref()
            .map(|p| format!(" to {}", p.display()))
            .unwrap_or_default(),
        match (&args.annotate, summary.video_frames) {
            (Some(p), Some(n)) => format!(", {n} frames drawn to {}", p.display()),
            _ => String::new(),
        },
        summary.wall.as_secs_f64()
    );
    Ok(())
}

/// Shows progress: an indicatif bar on a terminal, a plain line every 10 s otherwise.
struct Reporter {
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    last_line: Option<Instant>,
}

impl Reporter {
    fn new(terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40.cyan/blue} {percent:>3}% {msg} ETA {eta}",
                )
                .expect("a valid template"),
            );
            bar
        });
        Self {
            bar,
            started: Instant::now(),
            last_line: None,
        }
    }

    fn show(&mut self, cams: &[Progress]) {
        let position: Duration = cams.iter().map(|c| c.position).sum();
        let total: Option<Duration> = cams.iter().map(|c| c.duration).sum();
        let analysed: u64 = cams.iter().map(|c| c.analysed).sum();
        let fps = analysed as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        let msg = format!(
            "{:.1}/{} s, {fps:.1} fps analysed",
            position.as_secs_f64(),
            total.map_or("?".into(), |t| format!("{:.1}", t.as_secs_f64()))
        );
        if let Some(bar) = &self.bar {
            bar.set_length(total.unwrap_or_default().as_millis() as u64);
            bar.set_position(position.as_millis() as u64);
            bar.set_message(msg);
            return;
        }
        let due = self
            .last_line
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
        if due {
            self.last_line = Some(Instant::now());
            let pct = total
                .filter(|t| !t.is_zero())
                .map(|t| {
                    format!(
                        " ({:.0}%)",
                        100.0 * position.as_secs_f64() / t.as_secs_f64()
                    )
                })
                .unwrap_or_default();
            eprintln!("replay: {msg}{pct}");
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
