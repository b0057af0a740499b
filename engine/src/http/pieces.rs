//! A header block that arrives in pieces: what the reads before the last one
//! established about it, so that a read parses only what it adds.
//!
//! Until 2026-12-05 every read of an incomplete head parsed it again from its
//! start: the work for a head sent a byte at a time was quadratic in its
//! length (32 MB scanned for an 8 KiB head, 2 GB at `--max-header 65536`).
//! Now the whole head is parsed on its first read (the common case: all of
//! it, parsed exactly once), when its request line ends, when it ends, and
//! at `--max-header`; between those, only the field lines a read completes
//! are checked, once each.
//!
//! The answer for an incomplete head is therefore the one its complete lines
//! get: a malformed line (request line or field line) is refused once its
//! line end arrives (or at `--max-header`), not at its first bad byte;
//! except for a byte no line may hold anywhere (a control byte or DEL: a
//! TLS client's hello, binary), refused in the read that brings it. At
//! `--max-header` the head is judged by its first `--max-header` bytes
//! alone, whatever the read that reached the limit brought past it. That
//! holds for any split of the input, one read of it all included, so the
//! replies never depend on how the bytes were cut; a client that stops in
//! the middle of a bad line is closed at the header timeout.
//!
//! The empty lines a client may send before a request line (RFC 9112 §2.2)
//! are skipped before the head's first read, however they arrive
//! ([`empty_lines_ahead`]): the head starts at its request line, and they
//! count toward no limit.

use httparse::Status;

use super::head::empty_lines;
use super::limits::MAX_HEADERS;

/// How far the reads so far took an incomplete head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeadProgress {
    /// Bytes of the head the reads so far brought (0: none yet).
    seen: usize,
    /// End of the last line checked: the lines before it are valid.
    checked: usize,
    /// The request line is among the checked lines.
    request_line: bool,
    /// Field lines among the checked lines.
    fields: usize,
}

/// What a read of an incomplete head calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Look {
    /// Parse the head whole: its first read, or it is at `--max-header`.
    Whole,
    /// Parse the head's first `n` bytes (up to its last line end) whole: its
    /// request line or the head itself ended in this read.
    Lines(usize),
    /// A field line this read completed is invalid.
    Invalid(httparse::Error),
    /// This read brought a byte no line may hold: parse the head whole (it
    /// is refused).
    Refusable,
    /// Nothing to decide yet.
    Wait,
    /// Nothing of the head has come yet, and `input` starts with a line
    /// end: empty lines before it, to skip ([`empty_lines_ahead`]).
    EmptyLines,
}

impl HeadProgress {
    /// Before the head's first read.
    pub(crate) const fn new() -> Self {
        HeadProgress { seen: 0, checked: 0, request_line: false, fields: 0 }
    }

    /// Nothing of the head has come yet.
    pub(crate) fn at_start(&self) -> bool {
        self.seen == 0
    }

    /// What `input`, the head so far (the previous read's input extended),
    /// calls for. Looks only at the bytes the previous reads did not bring.
    pub(crate) fn look(&mut self, input: &[u8], max_header: usize) -> Look {
        let seen = std::mem::replace(&mut self.seen, input.len());
        if seen == 0 || input.len() < seen || input.len() >= max_header {
            if seen == 0 && matches!(input.first(), Some(b'\r' | b'\n')) {
                // A look at the first byte of each head.
                self.seen = 0;
                return Look::EmptyLines;
            }
            if input.len() < seen {
                // Not the input the previous read left (never, from the
                // worker): start over from what this one holds.
                *self = HeadProgress { seen: input.len(), ..HeadProgress::new() };
            }
            return Look::Whole;
        }
        if input[seen..].iter().any(|&b| never_in_a_head(b)) {
            return Look::Refusable;
        }
        let Some(last) = input[seen..].iter().rposition(|&b| b == b'\n') else { return Look::Wait };
        let lines_end = seen + last + 1;
        if !self.request_line {
            // The head starts at its request line (the empty lines before
            // it were skipped): its first line end ends it.
            return Look::Lines(lines_end);
        }
        // The field lines completed since: checked as `httparse` checks them
        // in the whole head, with the room for fields that is left.
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let room = MAX_HEADERS.saturating_sub(self.fields);
        let lines = &input[self.checked..lines_end];
        match httparse::parse_headers(lines, &mut storage[..room]) {
            Ok(Status::Partial) => {
                // Each line end ends one field line: no empty line among them.
                self.fields += lines.iter().filter(|&&b| b == b'\n').count();
                self.checked = lines_end;
                Look::Wait
            }
            // The head ended: parse it whole, for its fields.
            Ok(Status::Complete(_)) => Look::Lines(lines_end),
            Err(e) => Look::Invalid(e),
        }
    }

    /// The head's first `lines_end` bytes parsed whole as incomplete (after
    /// [`Look::Lines`]): its request line and the field lines there are valid.
    pub(crate) fn lines_valid(&mut self, input: &[u8], lines_end: usize) {
        let lines = &input[self.checked..lines_end];
        let ends = |lines: &[u8]| lines.iter().filter(|&&b| b == b'\n').count();
        if self.request_line {
            self.fields += ends(lines);
        } else {
            // The first line end ends the request line.
            let request_line_on = ends(lines);
            self.request_line = request_line_on > 0;
            self.fields = request_line_on.saturating_sub(1);
        }
        self.checked = lines_end;
    }
}

/// Before a head: the bytes at the start of `input` that are empty lines
/// (`\r\n` or `\n`), which a server ignores before a request line (RFC 9112
/// §2.2, as `httparse` does) — the `\n` of a `\r` that ended the input
/// before (`cr_due`), and a `\r` that ends this one, its `\n` still to come,
/// among them. `None` for a `\r` followed by another byte: no request line
/// may begin so (`httparse` refuses it), and it is decided at that byte,
/// wherever the reads are cut.
pub(crate) fn empty_lines_ahead(input: &[u8], cr_due: bool) -> Option<usize> {
    let mut at = 0;
    if cr_due {
        match input.first() {
            Some(b'\n') => at = 1,
            Some(_) => return None,
            None => return Some(0),
        }
    }
    at += empty_lines(&input[at..]);
    match input[at..] {
        [b'\r'] => Some(at + 1),
        [b'\r', ..] => None,
        _ => Some(at),
    }
}

/// A byte `httparse` takes nowhere in a head (method, target, version,
/// field name or value): a control byte other than HTAB, CR and LF, or DEL.
pub(crate) fn never_in_a_head(byte: u8) -> bool {
    (byte < 0x20 && !matches!(byte, b'\t' | b'\r' | b'\n')) || byte == 0x7f
}

/// The end of the last complete line of `input` (0 when there is none).
pub(crate) fn complete_lines(input: &[u8]) -> usize {
    input.iter().rposition(|&b| b == b'\n').map_or(0, |at| at + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 8192;

    /// Feeds `input` one byte more per read; the looks of each read.
    fn looks(input: &[u8]) -> Vec<Look> {
        let mut progress = HeadProgress::new();
        let mut got = Vec::new();
        for end in 1..=input.len() {
            let look = progress.look(&input[..end], MAX);
            if let Look::Lines(n) = look {
                progress.lines_valid(&input[..end], n);
            }
            got.push(look);
        }
        got
    }

    #[test]
    fn the_whole_head_is_parsed_on_its_first_read_its_request_line_and_its_end() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n";
        let got = looks(head);
        let parses: Vec<(usize, &Look)> = got.iter().enumerate().filter(|(_, l)| **l != Look::Wait).collect();
        assert_eq!(parses, [(0, &Look::Whole), (15, &Look::Lines(16)), (32, &Look::Lines(33))]);
    }

    /// Skips the empty lines at the start of `input` fed `cut` bytes a
    /// read (each read what the one before left, extended); the bytes
    /// skipped, or `None` at a bare CR.
    fn skipped_in_reads_of(input: &[u8], cut: usize) -> Option<usize> {
        let (mut at, mut cr_due) = (0, false);
        for end in (cut..input.len()).step_by(cut).chain([input.len()]) {
            if cr_due || matches!(input[at..end].first(), Some(b'\r' | b'\n')) {
                let skipped = empty_lines_ahead(&input[at..end], cr_due)?;
                if skipped > 0 {
                    cr_due = input[at + skipped - 1] == b'\r';
                }
                at += skipped;
            }
        }
        Some(at)
    }

    #[test]
    fn empty_lines_before_the_head_are_skipped_however_they_are_cut() {
        for (input, want) in [
            (&b"\r\n\n\r\nGET / HTTP/1.1\n"[..], Some(5)),
            (b"GET / HTTP/1.1\r\n", Some(0)),
            (b"\n\n", Some(2)),
            (b"\r\n\r", Some(3)),
            (b"\r\n\rGET", None),
            (b"\r\r\n", None),
        ] {
            for cut in 1..=input.len() {
                let shown = String::from_utf8_lossy(input);
                assert_eq!(skipped_in_reads_of(input, cut), want, "{shown:?} in reads of {cut}");
            }
        }
    }

    #[test]
    fn a_bad_field_line_is_found_at_its_end() {
        let got = looks(b"GET / HTTP/1.1\r\nBad Field: x\r\n");
        assert_eq!(got.last(), Some(&Look::Invalid(httparse::Error::HeaderName)));
        assert_eq!(got.iter().filter(|l| matches!(l, Look::Invalid(_))).count(), 1);
    }

    #[test]
    fn the_fields_after_the_last_allowed_are_too_many() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        head.extend(b"X: y\r\n".repeat(MAX_HEADERS));
        assert!(!looks(&head).iter().any(|l| matches!(l, Look::Invalid(_))));
        head.extend(b"X: y\r\n");
        assert_eq!(looks(&head).last(), Some(&Look::Invalid(httparse::Error::TooManyHeaders)));
    }

    #[test]
    fn a_byte_no_line_may_hold_is_looked_at_in_its_read() {
        let mut progress = HeadProgress::new();
        assert_eq!(progress.look(b"GET /", MAX), Look::Whole);
        assert_eq!(progress.look(b"GET /a", MAX), Look::Wait);
        assert_eq!(progress.look(b"GET /a\x16", MAX), Look::Refusable);
        assert_eq!(progress.look(b"GET /a\x16\x7f", MAX), Look::Refusable);
        assert_eq!(progress.look(b"GET /a\x16\x7f\t", MAX), Look::Wait);
    }

    #[test]
    fn the_limit_and_a_shorter_input_parse_whole() {
        let mut progress = HeadProgress::new();
        assert_eq!(progress.look(b"GET / HTTP/1.1\r\nX: ", 20), Look::Whole);
        assert_eq!(progress.look(b"GET / HTTP/1.1\r\nX: y", 20), Look::Whole);
        assert_eq!(progress.look(b"GET", 20), Look::Whole, "not the input extended");
        assert_eq!(progress.look(b"GET /", 20), Look::Wait);
    }
}
