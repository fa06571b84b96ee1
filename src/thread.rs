//! What a dead thread leaves behind: its panic message, as a reason an
//! operator can read in a camera's `error(…)` state.
//!
//! A leaf module: it imports nothing of the crate.

use std::any::Any;

/// The message a panic was raised with (`panic!("…")` or `.expect("…")`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_both_kinds_of_panic() {
        let a = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(a.as_ref()), "plain");
        let b = std::panic::catch_unwind(|| panic!("formatted {}", 7)).unwrap_err();
        assert_eq!(panic_message(b.as_ref()), "formatted 7");
        let c = std::panic::catch_unwind(|| std::panic::panic_any(3u8)).unwrap_err();
        assert_eq!(panic_message(c.as_ref()), "a panic without a message");
    }
}
