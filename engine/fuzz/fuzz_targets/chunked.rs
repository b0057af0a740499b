//! The chunked decoder against a plain reference decoder written here from
//! RFC 9112 §7.1 (whole input, recursive descent), fed whole and split:
//! the same end (where the body ends, or how it is refused) and the same
//! data, whatever the split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringmaster_engine::http::{ChunkedBody, ChunkedProgress, Limits};

const MAX_HEADERS: usize = 64;

#[derive(Debug, PartialEq, Eq)]
enum End {
    More,
    Done(usize),
    Invalid,
    BodyTooLarge,
    TrailersTooLarge,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_vchar_or_ws(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// The reference: walks the input once, counting what the limits count at
/// the byte where each is passed.
struct Reference<'a> {
    input: &'a [u8],
    at: usize,
    limits: Limits,
    body: u64,
    trailer_bytes: usize,
    data: Vec<u8>,
}

impl Reference<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    fn next(&mut self) -> Result<u8, End> {
        let b = self.peek().ok_or(End::More)?;
        self.at += 1;
        Ok(b)
    }

    fn ext_byte(&mut self) -> Result<(), End> {
        self.body += 1;
        if self.body > self.limits.max_body {
            return Err(End::BodyTooLarge);
        }
        Ok(())
    }

    fn trailer_byte(&mut self) -> Result<(), End> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.limits.max_header {
            return Err(End::TrailersTooLarge);
        }
        Ok(())
    }

    fn bws(&mut self) -> Result<(), End> {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
            self.ext_byte()?;
        }
        if self.peek().is_none() {
            return Err(End::More);
        }
        Ok(())
    }

    fn crlf(&mut self) -> Result<(), End> {
        if self.next()? != b'\r' || self.next()? != b'\n' {
            return Err(End::Invalid);
        }
        Ok(())
    }

    /// chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ), then CRLF.
    fn extensions(&mut self) -> Result<(), End> {
        loop {
            let before = self.at;
            self.bws()?;
            // Whitespace is only ever followed by a `;`.
            let ws = self.at > before;
            match self.next()? {
                b'\r' if !ws => {
                    return if self.next()? == b'\n' { Ok(()) } else { Err(End::Invalid) };
                }
                b';' => self.ext_byte()?,
                _ => return Err(End::Invalid),
            }
            self.bws()?;
            if !is_tchar(self.next()?) {
                return Err(End::Invalid);
            }
            self.ext_byte()?;
            while self.peek().is_some_and(is_tchar) {
                self.at += 1;
                self.ext_byte()?;
            }
            let before = self.at;
            self.bws()?;
            if self.peek() != Some(b'=') {
                // Whitespace after a name must be followed by `=` or `;`.
                if self.at > before && self.peek() != Some(b';') {
                    return Err(End::Invalid);
                }
                continue;
            }
            self.at += 1;
            self.ext_byte()?;
            self.bws()?;
            match self.next()? {
                b'"' => {
                    self.ext_byte()?;
                    loop {
                        let b = self.next()?;
                        if !is_vchar_or_ws(b) {
                            return Err(End::Invalid);
                        }
                        self.ext_byte()?;
                        match b {
                            b'"' => break,
                            b'\\' => {
                                if !is_vchar_or_ws(self.next()?) {
                                    return Err(End::Invalid);
                                }
                                self.ext_byte()?;
                            }
                            _ => {}
                        }
                    }
                }
                b if is_tchar(b) => {
                    self.ext_byte()?;
                    while self.peek().is_some_and(is_tchar) {
                        self.at += 1;
                        self.ext_byte()?;
                    }
                }
                _ => return Err(End::Invalid),
            }
        }
    }

    fn body(&mut self) -> Result<usize, End> {
        loop {
            let mut size: u64 = 0;
            let mut any = false;
            let mut significant = 0;
            while let Some(v) = self.peek().and_then(|b| (b as char).to_digit(16)) {
                self.at += 1;
                if any && size == 0 && v == 0 {
                    // A zero after a first zero is no digit of the size but
                    // framing, counted with the body as an extension's bytes are.
                    self.ext_byte()?;
                    continue;
                }
                any = true;
                if size != 0 || v != 0 {
                    significant += 1;
                    if significant > 16 {
                        return Err(End::Invalid);
                    }
                }
                size = size << 4 | u64::from(v);
            }
            if !any {
                self.next()?;
                return Err(End::Invalid);
            }
            if self.peek().is_none() {
                return Err(End::More);
            }
            self.extensions()?;
            if size == 0 {
                break;
            }
            self.body = self.body.saturating_add(size);
            if self.body > self.limits.max_body {
                return Err(End::BodyTooLarge);
            }
            let take = usize::try_from(size).unwrap_or(usize::MAX).min(self.input.len() - self.at);
            self.data.extend_from_slice(&self.input[self.at..self.at + take]);
            self.at += take;
            if (take as u64) < size {
                return Err(End::More);
            }
            self.crlf()?;
        }
        // Trailer section: field lines, then CRLF.
        let mut fields = 0;
        loop {
            match self.next()? {
                b'\r' => {
                    return if self.next()? == b'\n' { Ok(self.at) } else { Err(End::Invalid) };
                }
                b'\n' => return Err(End::Invalid),
                first => {
                    fields += 1;
                    if fields > MAX_HEADERS {
                        return Err(End::TrailersTooLarge);
                    }
                    self.trailer_byte()?;
                    if !is_tchar(first) {
                        return Err(End::Invalid);
                    }
                    loop {
                        let b = self.next()?;
                        self.trailer_byte()?;
                        if b == b':' {
                            break;
                        }
                        if !is_tchar(b) {
                            return Err(End::Invalid);
                        }
                    }
                    loop {
                        let b = self.next()?;
                        self.trailer_byte()?;
                        if b == b'\r' {
                            break;
                        }
                        if !is_vchar_or_ws(b) {
                            return Err(End::Invalid);
                        }
                    }
                    let b = self.next()?;
                    self.trailer_byte()?;
                    if b != b'\n' {
                        return Err(End::Invalid);
                    }
                }
            }
        }
    }
}

fn reference(input: &[u8], limits: Limits) -> (End, Vec<u8>) {
    let mut r = Reference { input, at: 0, limits, body: 0, trailer_bytes: 0, data: Vec::new() };
    let end = match r.body() {
        Ok(consumed) => End::Done(consumed),
        Err(end) => end,
    };
    (end, r.data)
}

/// The decoder fed `input` in pieces cut at `cuts`.
fn decoder(input: &[u8], cuts: &[usize], limits: Limits) -> (End, Vec<u8>) {
    let mut body = ChunkedBody::new();
    let mut data = Vec::new();
    let mut start = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    bounds.sort_unstable();
    bounds.push(input.len());
    for end in bounds {
        if end < start {
            continue;
        }
        let piece = &input[start..end];
        let progress = body.feed_with(piece, &limits, &mut |d| data.extend_from_slice(d));
        let end_of = match progress {
            ChunkedProgress::More => {
                start = end;
                continue;
            }
            ChunkedProgress::Done { consumed } => {
                assert!(consumed <= piece.len() && consumed > 0, "consumed {consumed} of {}", piece.len());
                End::Done(start + consumed)
            }
            ChunkedProgress::Invalid => End::Invalid,
            ChunkedProgress::BodyTooLarge => End::BodyTooLarge,
            ChunkedProgress::TrailersTooLarge => End::TrailersTooLarge,
        };
        return (end_of, data);
    }
    (End::More, data)
}

fuzz_target!(|bytes: &[u8]| {
    if bytes.len() < 3 {
        return;
    }
    let limits = Limits {
        max_header: 16 + usize::from(bytes[0]) * 4,
        max_body: [0, 5, 100, 1 << 20][usize::from(bytes[1] & 3)],
    };
    let cuts: Vec<usize> =
        bytes[2..2 + usize::from(bytes[1] >> 4).min(bytes.len() - 2)].iter().map(|&c| usize::from(c) * 7).collect();
    let input = &bytes[2 + cuts.len()..];
    let (want, want_data) = reference(input, limits);
    let (got, got_data) = decoder(input, &[], limits);
    assert_eq!(got, want, "whole input: decoder vs reference");
    if matches!(got, End::Done(_) | End::More) {
        assert_eq!(got_data, want_data, "whole input: data");
    }
    let (split, split_data) = decoder(input, &cuts, limits);
    assert_eq!(split, got, "split at {cuts:?} vs whole");
    assert_eq!(split_data, got_data, "split data");
});
