//! Checks of a completed receive shared by the test programs: its status names the expected
//! source, tag and length, and the bytes after the message, preset to [`SENTINEL`], are
//! intact. They return the problem for the caller to add context and
//! [`fail`](super::report::fail).

use tocsin::{Rank, Status, Tag};

use super::R;

/// Fills receive buffers past what may be written, to catch overruns.
pub const SENTINEL: u8 = 0xEE;

/// Checks that `st` names `source`, `tag` and `len` bytes.
pub fn status(st: &Status, source: Rank, tag: Tag, len: usize) -> R {
    if st.source == source && st.tag == tag && st.len == len {
        Ok(())
    } else {
        Err(format!(
            "status {st:?}, expected source {source} tag {tag} len {len}"
        ))
    }
}

/// Checks that `buf[from..]` still holds [`SENTINEL`].
pub fn untouched(buf: &[u8], from: usize) -> R {
    match buf[from..].iter().position(|&b| b != SENTINEL) {
        None => Ok(()),
        Some(i) => Err(format!(
            "byte {} written past the {from} bytes that were to be received",
            from + i
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overruns_and_statuses_are_named() {
        let mut b = vec![SENTINEL; 8];
        assert!(untouched(&b, 3).is_ok());
        b[5] = 0;
        assert_eq!(
            untouched(&b, 3).unwrap_err(),
            "byte 5 written past the 3 bytes that were to be received"
        );
        assert!(untouched(&b, 6).is_ok());
    }
}
