//! The hand-over point between a decode thread and its camera task.
//!
//! Holds at most one frame. In [`SlotMode::Latest`] (live sources) a new frame
//! replaces an unconsumed one and the replacement is counted; in
//! [`SlotMode::Block`] (files) the producer waits until the frame is taken.

use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::Notify;

use super::Frame;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotMode {
    Latest,
    Block,
}

struct State {
    frame: Option<Frame>,
    closed: bool,
}

struct Inner {
    mode: SlotMode,
    state: Mutex<State>,
    /// Wakes a producer waiting in `Block` mode.
    taken: Condvar,
    /// Wakes the consumer.
    filled: Notify,
}

/// A one-frame slot shared by one producer thread and one async consumer.
#[derive(Clone)]
pub struct FrameSlot {
    inner: Arc<Inner>,
}

impl FrameSlot {
    pub fn new(mode: SlotMode) -> Self {
        Self {
            inner: Arc::new(Inner {
                mode,
                state: Mutex::new(State {
                    frame: None,
                    closed: false,
                }),
                taken: Condvar::new(),
                filled: Notify::new(),
            }),
        }
    }

    /// Puts a frame in. Returns `Ok(true)` if it replaced a frame nobody took (a drop),
    /// `Err(frame)` if the slot is closed.
    pub fn put(&self, frame: Frame) -> Result<bool, Frame> {
        let mut st = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        if self.inner.mode == SlotMode::Block {
            while st.frame.is_some() && !st.closed {
                st = self.inner.taken.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
        if st.closed {
            return Err(frame);
        }
        let replaced = st.frame.replace(frame).is_some();
        drop(st);
        self.inner.filled.notify_one();
        Ok(replaced)
    }

    /// Waits for the next frame; `None` once the slot is closed and empty.
    pub async fn take(&self) -> Option<Frame> {
        loop {
            let notified = self.inner.filled.notified();
            {
                let mut st = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(f) = st.frame.take() {
                    drop(st);
                    self.inner.taken.notify_one();
                    return Some(f);
                }
                if st.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Closes the slot: the producer's next `put` fails, the consumer drains then gets `None`.
    pub fn close(&self) {
        let mut st = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        st.closed = true;
        drop(st);
        self.inner.taken.notify_all();
        self.inner.filled.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn frame(index: u64) -> Frame {
        Frame {
            width: 1,
            height: 1,
            data: vec![0; 3],
            pts: Duration::ZERO,
            captured_at: SystemTime::UNIX_EPOCH,
            index,
            decoded: None,
        }
    }

    #[tokio::test]
    async fn latest_mode_replaces_and_reports_the_drop() {
        let slot = FrameSlot::new(SlotMode::Latest);
        assert!(!slot.put(frame(1)).unwrap());
        assert!(slot.put(frame(2)).unwrap());
        assert_eq!(slot.take().await.unwrap().index, 2);
        slot.close();
        assert!(slot.take().await.is_none());
        assert!(slot.put(frame(3)).is_err());
    }

    #[tokio::test]
    async fn block_mode_hands_over_every_frame() {
        let slot = FrameSlot::new(SlotMode::Block);
        let producer = slot.clone();
        let t = std::thread::spawn(move || {
            for i in 0..50 {
                assert!(!producer.put(frame(i)).unwrap());
            }
            producer.close();
        });
        let mut got = Vec::new();
        while let Some(f) = slot.take().await {
            got.push(f.index);
        }
        t.join().unwrap();
        assert_eq!(got, (0..50).collect::<Vec<_>>());
    }
}
