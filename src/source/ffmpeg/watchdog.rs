//! The watchdog shared with FFmpeg's interrupt callback: blocked opens and
//! reads return once no frame came for the stall timeout, or at once when the
//! camera stops, so a silent peer can never hang a decode thread.

use std::ffi::{c_int, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Shared with FFmpeg's interrupt callback: makes blocked I/O return.
pub struct Watchdog {
    epoch: Instant,
    /// Milliseconds since `epoch` after which I/O is abandoned; `u64::MAX` = never.
    deadline_ms: AtomicU64,
    /// Set when the camera stops: abandon I/O at once.
    stop: AtomicBool,
    /// Set when the deadline (not a stop) interrupted I/O.
    fired: AtomicBool,
    /// The camera's stop token: its cancellation interrupts I/O too.
    token: Option<tokio_util::sync::CancellationToken>,
}

impl Watchdog {
    pub fn new() -> Arc<Self> {
        Self::make(None)
    }

    /// A watchdog that also interrupts I/O once `token` is cancelled.
    pub fn with_stop(token: tokio_util::sync::CancellationToken) -> Arc<Self> {
        Self::make(Some(token))
    }

    fn make(token: Option<tokio_util::sync::CancellationToken>) -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            deadline_ms: AtomicU64::new(u64::MAX),
            stop: AtomicBool::new(false),
            fired: AtomicBool::new(false),
            token,
        })
    }

    /// I/O must make progress within `d` from now.
    pub fn arm(&self, d: Duration) {
        let ms = (self.epoch.elapsed() + d).as_millis() as u64;
        self.deadline_ms.store(ms, Ordering::Relaxed);
        self.fired.store(false, Ordering::Relaxed);
    }

    pub fn disarm(&self) {
        self.deadline_ms.store(u64::MAX, Ordering::Relaxed);
    }

    /// Interrupts any I/O now and from now on.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.token.as_ref().is_some_and(|t| t.is_cancelled())
    }

    pub(super) fn fired(&self) -> bool {
        self.fired.load(Ordering::Relaxed)
    }

    pub(super) fn should_interrupt(&self) -> bool {
        if self.is_stopped() {
            return true;
        }
        let late =
            self.epoch.elapsed().as_millis() as u64 > self.deadline_ms.load(Ordering::Relaxed);
        if late {
            self.fired.store(true, Ordering::Relaxed);
        }
        late
    }
}

pub(super) unsafe extern "C" fn interrupt_cb(opaque: *mut c_void) -> c_int {
    // SAFETY: `opaque` is the `Watchdog` kept alive by the `FfmpegSource` (or the
    // opening function) for as long as the format context exists.
    let dog = unsafe { &*(opaque as *const Watchdog) };
    dog.should_interrupt() as c_int
}
