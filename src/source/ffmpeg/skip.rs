//! What the decoder may leave undecoded, and the stream index of each frame
//! whatever it left out.
//!
//! In: each packet's timestamp as it goes to the decoder, the sampler's next
//! due time; each decoded frame's timestamp. Out: the discard level for the
//! packet ([`Discard`]) and the frame's index in the stream.
//!
//! A frame no other frame refers to (a non-reference B frame) can be skipped
//! without changing any other frame. It is skipped only when its timestamp
//! lies before the sampler's next due time: frames come out of the decoder in
//! timestamp order, so by the time it would come out the due time has not
//! moved and the sampler would pass it by. A stream without packet timestamps
//! is decoded whole.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::config::DecodeMode;

/// FFmpeg's `skip_frame` level for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Discard {
    /// Decode it.
    Nothing,
    /// Skip it if no other frame refers to it.
    NonRef,
    /// Skip it unless it is a key frame.
    NonKey,
}

/// Per-stream bookkeeping of skipped packets.
#[derive(Debug)]
pub(super) struct Skipper {
    mode: DecodeMode,
    /// The sampler's interval: a due time further than four of them ahead means the
    /// sampler will restart (the stream jumped back), so nothing is skipped.
    interval: Duration,
    /// Timestamps of packets sent and not yet passed by a decoded frame.
    sent: BinaryHeap<Reverse<i64>>,
    /// Packets passed by decoded frames so far: the next frame's index.
    passed: u64,
    /// A packet came without a timestamp: indices are counted per decoded frame.
    untimed: bool,
}

impl Skipper {
    pub(super) fn new(mode: DecodeMode, interval: Duration) -> Self {
        Self {
            mode,
            interval,
            sent: BinaryHeap::new(),
            passed: 0,
            untimed: false,
        }
    }

    /// The discard level for a packet at stream time `pts` (raw timestamp `raw`),
    /// which is about to be sent to the decoder; `due` is the sampler's next due time.
    pub(super) fn packet(
        &mut self,
        raw: Option<i64>,
        pts: Option<Duration>,
        due: Option<Duration>,
    ) -> Discard {
        match raw {
            Some(ts) if !self.untimed => self.sent.push(Reverse(ts)),
            _ => {
                self.untimed = true;
                self.sent.clear();
            }
        }
        match self.mode {
            DecodeMode::All => Discard::Nothing,
            DecodeMode::Keyframes => Discard::NonKey,
            DecodeMode::Sampled => match (pts, due) {
                (Some(p), Some(d)) if !self.untimed && p < d && d - p <= self.interval * 4 => {
                    Discard::NonRef
                }
                _ => Discard::Nothing,
            },
        }
    }

    /// The stream index of a decoded frame with raw timestamp `raw`: how many packets
    /// lie before it, skipped ones included. `counted` is the number of frames decoded
    /// before it, used when timestamps are missing.
    pub(super) fn index(&mut self, raw: Option<i64>, counted: u64) -> u64 {
        let Some(ts) = raw.filter(|_| !self.untimed) else {
            return counted;
        };
        while let Some(&Reverse(first)) = self.sent.peek() {
            if first > ts {
                break;
            }
            self.sent.pop();
            if first < ts {
                self.passed += 1;
            }
        }
        let index = self.passed;
        self.passed += 1;
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn only_frames_before_the_due_time_may_be_skipped() {
        let iv = ms(200);
        let mut s = Skipper::new(DecodeMode::Sampled, iv);
        // (packet pts, due) → level
        let table = [
            (Some(100), Some(200), Discard::NonRef),
            (Some(200), Some(200), Discard::Nothing),
            (Some(300), Some(200), Discard::Nothing),
            (Some(100), None, Discard::Nothing),
            // Due far ahead: the sampler restarts on this frame (stream went back).
            (Some(0), Some(900), Discard::Nothing),
            (Some(0), Some(800), Discard::NonRef),
        ];
        for (i, (pts, due, want)) in table.into_iter().enumerate() {
            let got = s.packet(pts.map(|p| p as i64), pts.map(ms), due.map(ms));
            assert_eq!(got, want, "row {i}");
        }
        // A packet without timestamp turns skipping off for the stream.
        assert_eq!(s.packet(None, None, Some(ms(900))), Discard::Nothing);
        assert_eq!(
            s.packet(Some(1000), Some(ms(1000)), Some(ms(1100))),
            Discard::Nothing
        );
    }

    #[test]
    fn modes_all_and_keyframes_are_fixed() {
        let mut all = Skipper::new(DecodeMode::All, ms(200));
        assert_eq!(
            all.packet(Some(0), Some(ms(0)), Some(ms(100))),
            Discard::Nothing
        );
        let mut key = Skipper::new(DecodeMode::Keyframes, ms(200));
        assert_eq!(
            key.packet(Some(0), Some(ms(0)), Some(ms(0))),
            Discard::NonKey
        );
    }

    #[test]
    fn indices_count_skipped_packets() {
        // Decode order I0 P4 B2 B1 B3 P8 B6 B5 B7; B1, B3, B5, B7 skipped.
        let mut s = Skipper::new(DecodeMode::Sampled, ms(200));
        for ts in [0, 4, 2, 1, 3, 8, 6, 5, 7] {
            s.packet(Some(ts), None, None);
        }
        let got: Vec<u64> = [0, 2, 4, 6, 8]
            .iter()
            .map(|&t| s.index(Some(t), 0))
            .collect();
        assert_eq!(got, vec![0, 2, 4, 6, 8]);
        // Without timestamps the caller's count stands.
        let mut u = Skipper::new(DecodeMode::All, ms(200));
        u.packet(None, None, None);
        assert_eq!(u.index(Some(5), 3), 3);
    }
}
