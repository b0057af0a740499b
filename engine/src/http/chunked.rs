//! A streaming decoder that walks a `chunked` body (RFC 9112 §7.1) byte by
//! byte and discards it, so a chunk header split across reads needs no
//! buffering; the framing around the data is bounded and checked as it comes.

use super::is_tchar;
use super::limits::{Limits, MAX_HEADERS};

/// Where a chunked body stands after feeding it some bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkedProgress {
    /// All input consumed, the body goes on.
    More,
    /// The body (with its trailers) ended after `consumed` bytes.
    Done {
        /// Bytes of the input that belonged to the body.
        consumed: usize,
    },
    /// The framing is malformed: a chunk-size line outside the grammar, a
    /// line end other than CRLF anywhere (chunk lines, after chunk data,
    /// trailer lines, the final empty line), or a trailer line that is not a
    /// field.
    Invalid,
    /// Chunk data and chunk extensions add up to more than `max_body`.
    BodyTooLarge,
    /// The trailer section is over `max_header` bytes or `MAX_HEADERS` fields.
    TrailersTooLarge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Expecting the first hex digit of a chunk size.
    SizeStart,
    /// Inside the hex digits of a chunk size.
    Size,
    /// After the size or a whole extension: CR, `;`, or whitespace before a `;`.
    SizeTail,
    /// Whitespace after the size or after an extension: a `;` must follow.
    SemicolonBws,
    /// After a `;`: optional whitespace, then an extension's name.
    NameStart,
    /// Inside an extension's name.
    Name,
    /// Whitespace after a name: `=` or `;` must follow.
    NameBws,
    /// After a `=`: optional whitespace, then a token or a quoted string.
    ValueStart,
    /// Inside a token value.
    Token,
    /// Inside a quoted value.
    Quoted,
    /// After a backslash in a quoted value.
    QuotedPair,
    /// Saw CR after the size line, expecting LF.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// After chunk data, expecting CR.
    DataCr,
    /// After chunk data and CR, expecting LF.
    DataLf,
    /// At the start of a trailer field line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field name, up to its colon.
    TrailerName,
    /// After the colon of a trailer field, up to the line end.
    TrailerValue,
    /// Saw CR ending a trailer field line, expecting LF.
    TrailerLf,
    /// Saw CR at the start of a line after the last chunk, expecting LF.
    EndLf,
}

/// The state of one chunked body being discarded.
#[derive(Clone, Copy, Debug)]
pub struct ChunkedBody {
    state: State,
    /// Size of the chunk being read, or bytes of it still to skip in `Data`.
    size: u64,
    digits: u8,
    /// Body bytes so far: the sizes of the chunks begun and every byte of
    /// their extensions (a client must not send unbounded framing for free).
    body_bytes: u64,
    /// Bytes of the trailer section so far: its field lines, line ends included.
    trailer_bytes: usize,
    /// Trailer field lines begun so far.
    trailer_fields: usize,
}

impl ChunkedBody {
    /// A body that has not started yet.
    pub fn new() -> Self {
        ChunkedBody { state: State::SizeStart, size: 0, digits: 0, body_bytes: 0, trailer_bytes: 0, trailer_fields: 0 }
    }

    /// Consumes `input` as body bytes, refusing a body (chunk data and
    /// extensions) over `limits.max_body` bytes, and a trailer section over
    /// `limits.max_header` bytes or `MAX_HEADERS` fields, as soon as it is over.
    pub fn feed(&mut self, input: &[u8], limits: &Limits) -> ChunkedProgress {
        self.feed_with(input, limits, &mut |_| {})
    }

    /// [`ChunkedBody::feed`], handing each run of chunk data to `on_data`
    /// (the body without its framing, in order).
    pub fn feed_with(&mut self, input: &[u8], limits: &Limits, on_data: &mut impl FnMut(&[u8])) -> ChunkedProgress {
        let mut at = 0;
        while at < input.len() {
            if self.state == State::Data {
                let take = (input.len() - at).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                on_data(&input[at..at + take]);
                at += take;
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let byte = input[at];
            at += 1;
            match self.step(byte, limits) {
                Ok(true) => return ChunkedProgress::Done { consumed: at },
                Ok(false) => {}
                Err(progress) => return progress,
            }
        }
        ChunkedProgress::More
    }

    /// One byte outside chunk data; `Ok(true)` when the body has ended.
    fn step(&mut self, byte: u8, limits: &Limits) -> Result<bool, ChunkedProgress> {
        match self.state {
            State::SizeStart | State::Size => match hex_value(byte) {
                Some(0) if self.size == 0 && self.state == State::Size => {
                    // A leading zero after the first (`1*HEXDIG`, RFC 9112
                    // §7.1, as nginx takes them): no digit of the size, but
                    // framing, counted with the body as an extension's
                    // bytes are, so that a line of them ends. Until
                    // 2026-12-07 it counted as a digit, and a size of 17
                    // digits or more was refused (`400`) whatever its value.
                    self.count_extension_byte(limits)?;
                }
                Some(v) => {
                    if self.size != 0 || v != 0 {
                        self.digits += 1;
                    }
                    // 16 significant hex digits fill a u64; more can only be an overflow.
                    if self.digits > 16 {
                        return Err(ChunkedProgress::Invalid);
                    }
                    self.size = (self.size << 4) | u64::from(v);
                    self.state = State::Size;
                }
                None if self.state == State::SizeStart => return Err(ChunkedProgress::Invalid),
                None => {
                    self.state = State::SizeTail;
                    return self.step(byte, limits);
                }
            },
            State::SizeTail
            | State::SemicolonBws
            | State::NameStart
            | State::Name
            | State::NameBws
            | State::ValueStart
            | State::Token
            | State::Quoted
            | State::QuotedPair => {
                self.state = extension_step(self.state, byte).ok_or(ChunkedProgress::Invalid)?;
                if byte != b'\r' {
                    self.count_extension_byte(limits)?;
                }
            }
            State::SizeLf => {
                if byte != b'\n' {
                    return Err(ChunkedProgress::Invalid);
                }
                return self.end_size_line(limits);
            }
            State::Data => unreachable!("chunk data is consumed in bulk by feed"),
            State::DataCr => match byte {
                b'\r' => self.state = State::DataLf,
                // Chunk data ends with CRLF, never a bare LF (as on size lines).
                _ => return Err(ChunkedProgress::Invalid),
            },
            State::DataLf => {
                if byte != b'\n' {
                    return Err(ChunkedProgress::Invalid);
                }
                self.start_next_chunk();
            }
            State::TrailerStart => match byte {
                b'\r' => self.state = State::EndLf,
                // Trailer lines end in CRLF, as chunk lines do (a bare LF is
                // refused below too): a proxy that looks for CRLF CRLF must
                // find the body's end where this decoder does.
                b'\n' => return Err(ChunkedProgress::Invalid),
                _ => {
                    self.trailer_fields += 1;
                    if self.trailer_fields > MAX_HEADERS {
                        return Err(ChunkedProgress::TrailersTooLarge);
                    }
                    self.count_trailer_byte(limits)?;
                    // A field line starts with its name: not with whitespace
                    // (obsolete line folding) nor a colon (an empty name).
                    if !is_tchar(byte) {
                        return Err(ChunkedProgress::Invalid);
                    }
                    self.state = State::TrailerName;
                }
            },
            State::TrailerName => {
                self.count_trailer_byte(limits)?;
                match byte {
                    b':' => self.state = State::TrailerValue,
                    _ if is_tchar(byte) => {}
                    // No colon before the line end, or a name that is not a
                    // token (whitespace before the colon included, RFC 9112 §5.1).
                    _ => return Err(ChunkedProgress::Invalid),
                }
            }
            State::TrailerValue => {
                self.count_trailer_byte(limits)?;
                match byte {
                    b'\r' => self.state = State::TrailerLf,
                    _ if is_field_value_byte(byte) => {}
                    _ => return Err(ChunkedProgress::Invalid),
                }
            }
            State::TrailerLf => {
                self.count_trailer_byte(limits)?;
                if byte != b'\n' {
                    return Err(ChunkedProgress::Invalid);
                }
                self.state = State::TrailerStart;
            }
            State::EndLf => {
                if byte != b'\n' {
                    return Err(ChunkedProgress::Invalid);
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn end_size_line(&mut self, limits: &Limits) -> Result<bool, ChunkedProgress> {
        if self.size == 0 {
            self.state = State::TrailerStart;
            return Ok(false);
        }
        self.body_bytes = self.body_bytes.saturating_add(self.size);
        if self.body_bytes > limits.max_body {
            return Err(ChunkedProgress::BodyTooLarge);
        }
        self.state = State::Data;
        Ok(false)
    }

    /// Counts one byte of a chunk-size line after the size, decided at once
    /// rather than at the line's end, which may never come.
    fn count_extension_byte(&mut self, limits: &Limits) -> Result<(), ChunkedProgress> {
        self.body_bytes = self.body_bytes.saturating_add(1);
        if self.body_bytes > limits.max_body {
            return Err(ChunkedProgress::BodyTooLarge);
        }
        Ok(())
    }

    /// Counts one byte of the trailer section against the header block's limit.
    fn count_trailer_byte(&mut self, limits: &Limits) -> Result<(), ChunkedProgress> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > limits.max_header {
            return Err(ChunkedProgress::TrailersTooLarge);
        }
        Ok(())
    }

    fn start_next_chunk(&mut self) {
        self.state = State::SizeStart;
        self.size = 0;
        self.digits = 0;
    }
}

impl Default for ChunkedBody {
    fn default() -> Self {
        Self::new()
    }
}

/// The state after `byte` on a chunk-size line past its size (RFC 9112
/// §7.1.1): `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`,
/// then CR; `None` when the byte breaks that grammar. Whitespace no `;`
/// follows, a `;` no name follows, a `=` no value follows: each is read one
/// way by one parser and another by the next, the shape of a smuggled
/// request; a bare LF too (§7.1 ends chunk lines with CRLF, and §2.2 lets an
/// LF stand alone in a header block only).
fn extension_step(state: State, byte: u8) -> Option<State> {
    let bws = byte == b' ' || byte == b'\t';
    let next = match state {
        State::SizeTail => match byte {
            b'\r' => State::SizeLf,
            b';' => State::NameStart,
            _ if bws => State::SemicolonBws,
            _ => return None,
        },
        State::SemicolonBws => match byte {
            b';' => State::NameStart,
            _ if bws => State::SemicolonBws,
            _ => return None,
        },
        State::NameStart => match byte {
            _ if bws => State::NameStart,
            _ if is_tchar(byte) => State::Name,
            _ => return None,
        },
        State::Name => match byte {
            _ if is_tchar(byte) => State::Name,
            b'=' => State::ValueStart,
            _ if bws => State::NameBws,
            _ => return extension_step(State::SizeTail, byte),
        },
        State::NameBws => match byte {
            b'=' => State::ValueStart,
            b';' => State::NameStart,
            _ if bws => State::NameBws,
            _ => return None,
        },
        State::ValueStart => match byte {
            b'"' => State::Quoted,
            _ if bws => State::ValueStart,
            _ if is_tchar(byte) => State::Token,
            _ => return None,
        },
        State::Token => match byte {
            _ if is_tchar(byte) => State::Token,
            _ => return extension_step(State::SizeTail, byte),
        },
        State::Quoted => match byte {
            b'"' => State::SizeTail,
            b'\\' => State::QuotedPair,
            // qdtext: HTAB, SP, VCHAR but `"` and `\`, obs-text.
            _ if is_field_value_byte(byte) => State::Quoted,
            _ => return None,
        },
        // quoted-pair: a backslash and HTAB, SP, VCHAR or obs-text.
        State::QuotedPair if is_field_value_byte(byte) => State::Quoted,
        _ => return None,
    };
    Some(next)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// A byte a field value may hold (RFC 9110 §5.5): visible, SP, HTAB or obs-text.
fn is_field_value_byte(byte: u8) -> bool {
    matches!(byte, b'\t' | b' '..=b'~' | 0x80..=0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Limits with room for everything but what a test is about.
    fn with_max_body(max_body: u64) -> Limits {
        Limits { max_header: 8192, max_body }
    }

    fn with_max_header(max_header: usize) -> Limits {
        Limits { max_header, max_body: 1 << 20 }
    }

    /// A last chunk followed by `trailers` and the final empty line.
    fn last_chunk_with(trailers: &[u8]) -> Vec<u8> {
        [&b"0\r\n"[..], trailers, b"\r\n"].concat()
    }

    const BODY: &[u8] = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n";

    #[test]
    fn whole_body_in_one_feed() {
        let mut body = ChunkedBody::new();
        let mut input = BODY.to_vec();
        input.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(body.feed(&input, &with_max_body(1 << 20)), ChunkedProgress::Done { consumed: BODY.len() });
    }

    #[test]
    fn one_byte_at_a_time() {
        let mut body = ChunkedBody::new();
        for (i, byte) in BODY.iter().enumerate() {
            let progress = body.feed(std::slice::from_ref(byte), &with_max_body(1 << 20));
            if i + 1 == BODY.len() {
                assert_eq!(progress, ChunkedProgress::Done { consumed: 1 });
            } else {
                assert_eq!(progress, ChunkedProgress::More, "byte {i}");
            }
        }
    }

    #[test]
    fn bare_lf_ends_no_line_of_a_chunked_body() {
        // Chunk-size lines, chunk data, the last chunk, trailer field lines
        // and the final empty line all end in CRLF only: a proxy that looks
        // for CRLF CRLF must agree where the body ends.
        for bad in [
            &b"3\nabc\r\n0\r\n\r\n"[..],
            b"3;x\nabc\r\n",
            b"3 \nabc\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"0\n\r\n",
            b"0;x\n\r\n",
            b"3\r\nabc\r\n0\r\nX: y\n\r\n",
            b"3\r\nabc\r\n0\r\nX: y\r\n\n",
            b"3\r\nabc\r\n0\r\n\n",
        ] {
            let progress = ChunkedBody::new().feed(bad, &with_max_body(100));
            assert_eq!(progress, ChunkedProgress::Invalid, "{:?}", String::from_utf8_lossy(bad));
        }
        let body = b"3\r\nabc\r\n0\r\nX: y\r\n\r\n";
        assert_eq!(ChunkedBody::new().feed(body, &with_max_body(100)), ChunkedProgress::Done { consumed: body.len() });
    }

    #[test]
    fn chunk_size_lines_keep_to_the_grammar() {
        // RFC 9112 §7.1.1: chunk-size *( BWS ";" BWS name [ BWS "=" BWS value ] ) CRLF,
        // a value a token or a quoted-string. Whitespace with no `;` after it,
        // a `;` with no name, a `=` with no value: each read one way by one
        // parser and another by the next ("funky chunks").
        let mut wrong = Vec::new();
        // A chunk of five bytes, or the last chunk, whatever follows its size.
        let body = |line: &[u8]| {
            let rest: &[u8] = if line.starts_with(b"0") { b"\r\n" } else { b"hello\r\n0\r\n\r\n" };
            [line, rest].concat()
        };
        for bad in [
            &b"5 \r\n"[..],
            b"5\t\r\n",
            b"5 \t \r\n",
            b"5;\r\n",
            b"5 ;\r\n",
            b"5; \r\n",
            b"5;;a\r\n",
            b"5;a;\r\n",
            b"5;=v\r\n",
            b"5;a=\r\n",
            b"5;a= \r\n",
            b"5;a \r\n",
            b"5;a=b \r\n",
            b"5;a=b c\r\n",
            b"5;a b\r\n",
            b"5;a=\"x\r\n",
            b"5;a=\"x\"y\r\n",
            b"5;a=\"x\" \r\n",
            b"5;a=b\"c\"\r\n",
            b"5;a(b)\r\n",
            b"5;a=\"\x01\"\r\n",
            b"5;a=\"\\\x01\"\r\n",
            b"0 \r\n",
            b"0;\r\n",
        ] {
            let body = body(bad);
            let progress = ChunkedBody::new().feed(&body, &with_max_body(100));
            if progress != ChunkedProgress::Invalid {
                wrong.push(format!("{:?}: {progress:?}", String::from_utf8_lossy(bad)));
            }
        }
        for good in [
            &b"5\r\n"[..],
            b"5;name\r\n",
            b"5;name=value\r\n",
            b"5 ;name\r\n",
            b"5\t;name\r\n",
            b"5;name=\"quoted\"\r\n",
            b"5;a;b=1;c=\"x y\"\r\n",
            b"5 ;a=1 ;b \t; c = \"d\" ;e\r\n",
            b"5; a = b\r\n",
            b"5;a=\"\"\r\n",
            b"5;a=\"x;y=z\"\r\n",
            b"5;a=\"\\\"\\\\\"\r\n",
            b"5;a=\"caf\xc3\xa9\"\r\n",
            b"5;!#$%&'*+-.^_`|~09az=!#$%&'*+-.^_`|~09az\r\n",
            b"0;last\r\n",
            b"0 ;a=\"b\"\r\n",
        ] {
            let body = body(good);
            let progress = ChunkedBody::new().feed(&body, &with_max_body(100));
            if progress != (ChunkedProgress::Done { consumed: body.len() }) {
                wrong.push(format!("{:?}: {progress:?}", String::from_utf8_lossy(good)));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn too_large_is_refused_at_the_size_line() {
        let mut body = ChunkedBody::new();
        assert_eq!(body.feed(b"3e8\r\n", &with_max_body(1000)), ChunkedProgress::More);
        let mut body = ChunkedBody::new();
        assert_eq!(body.feed(b"3e9\r\n", &with_max_body(1000)), ChunkedProgress::BodyTooLarge);
    }

    #[test]
    fn extension_bytes_count_with_the_data() {
        // 6 bytes after the size (";a=bcd") and 4 of data: 10 in all.
        let body = b"4;a=bcd\r\nabcd\r\n0\r\n\r\n";
        assert_eq!(ChunkedBody::new().feed(body, &with_max_body(10)), ChunkedProgress::Done { consumed: body.len() });
        assert_eq!(ChunkedBody::new().feed(body, &with_max_body(9)), ChunkedProgress::BodyTooLarge);
        // Whitespace before the `;` and the last chunk's extensions count too:
        // " \t;x" and ";y" are 6 bytes, with 1 of data.
        let body = b"1 \t;x\r\na\r\n0;y\r\n\r\n";
        assert_eq!(ChunkedBody::new().feed(body, &with_max_body(7)), ChunkedProgress::Done { consumed: body.len() });
        assert_eq!(ChunkedBody::new().feed(body, &with_max_body(6)), ChunkedProgress::BodyTooLarge);
    }

    #[test]
    fn extension_over_max_body_is_refused_before_its_line_ends() {
        let mut body = ChunkedBody::new();
        assert_eq!(body.feed(b"0;", &with_max_body(2)), ChunkedProgress::More);
        assert_eq!(body.feed(b"x", &with_max_body(2)), ChunkedProgress::More);
        assert_eq!(body.feed(b"y", &with_max_body(2)), ChunkedProgress::BodyTooLarge);
        // An endless extension costs at most max_body + 1 bytes of reading.
        let mut body = ChunkedBody::new();
        let endless = [b'x'; 4096];
        assert_eq!(body.feed(b"1;", &with_max_body(1024)), ChunkedProgress::More);
        assert_eq!(body.feed(&endless, &with_max_body(1024)), ChunkedProgress::BodyTooLarge);
    }

    #[test]
    fn leading_zeros_of_a_chunk_size_are_no_digits_but_count_as_framing() {
        let limits = with_max_body(1024);
        let zeros = "0".repeat(40);
        for (body, want) in [
            (format!("{zeros}1\r\na\r\n{zeros}\r\n\r\n"), ChunkedProgress::Done { consumed: 90 }),
            (format!("{zeros}FFFFFFFFFFFFFFFF\r\n"), ChunkedProgress::BodyTooLarge),
            (format!("{zeros}10000000000000000\r\n"), ChunkedProgress::Invalid),
        ] {
            assert_eq!(ChunkedBody::new().feed(body.as_bytes(), &limits), want, "{body:?}");
        }
        // Each zero after the first counts with the body: an endless line ends.
        let mut body = ChunkedBody::new();
        assert_eq!(body.feed(&[b'0'; 1025], &limits), ChunkedProgress::More, "1024 zeros counted: at the limit");
        assert_eq!(body.feed(b"0", &limits), ChunkedProgress::BodyTooLarge);
    }

    #[test]
    fn malformed_framing_is_invalid() {
        for bad in [
            &b"x\r\n"[..],
            b"3\r\nabcX",
            b"3 x\r\n",
            b"11111111111111111\r\n",
            b"0\r\n\rX",
            b"3;a=\x00\r\n",
            b"3;a\x7f\r\n",
            b"3;a\rb\r\n",
        ] {
            let mut body = ChunkedBody::new();
            assert_eq!(body.feed(bad, &with_max_body(u64::MAX)), ChunkedProgress::Invalid, "{:?}", bad);
        }
    }

    #[test]
    fn trailer_bytes_count_against_max_header() {
        // Two field lines of 11 and 7 bytes, line ends included.
        let body = last_chunk_with(b"X-A: 1234\r\nB: xy\r\n");
        assert_eq!(
            ChunkedBody::new().feed(&body, &with_max_header(18)),
            ChunkedProgress::Done { consumed: body.len() }
        );
        assert_eq!(ChunkedBody::new().feed(&body, &with_max_header(17)), ChunkedProgress::TrailersTooLarge);
        // The final empty line is not part of the section: no trailers fit any limit.
        assert_eq!(ChunkedBody::new().feed(b"0\r\n\r\n", &with_max_header(0)), ChunkedProgress::Done { consumed: 5 });
    }

    #[test]
    fn trailer_over_max_header_is_refused_before_its_line_ends() {
        let mut body = ChunkedBody::new();
        assert_eq!(body.feed(b"0\r\nX: ", &with_max_header(256)), ChunkedProgress::More);
        assert_eq!(body.feed(&[b'v'; 253], &with_max_header(256)), ChunkedProgress::More);
        assert_eq!(body.feed(b"v", &with_max_header(256)), ChunkedProgress::TrailersTooLarge);
    }

    #[test]
    fn trailer_fields_over_max_headers_are_refused() {
        let field = b"X: 1\r\n";
        let body = last_chunk_with(&field.repeat(MAX_HEADERS));
        assert_eq!(
            ChunkedBody::new().feed(&body, &with_max_header(8192)),
            ChunkedProgress::Done { consumed: body.len() }
        );
        // One more is refused at its first byte.
        let mut body = ChunkedBody::new();
        let fields = [&b"0\r\n"[..], &field.repeat(MAX_HEADERS)].concat();
        assert_eq!(body.feed(&fields, &with_max_header(8192)), ChunkedProgress::More);
        assert_eq!(body.feed(b"X", &with_max_header(8192)), ChunkedProgress::TrailersTooLarge);
    }

    #[test]
    fn trailer_lines_must_be_fields() {
        for bad in [
            &b"NoColon\r\n"[..],
            b"NoColon\n",
            b"Bad Name: v\r\n",
            b"X : v\r\n",
            b": empty-name\r\n",
            b" folded\r\n",
            b"\tfolded\r\n",
            b"X(y): v\r\n",
            b"X\xe9: v\r\n",
            b"X: a\x00b\r\n",
            b"X: a\rb\r\n",
            b"X: v\r\r\n",
        ] {
            let body = last_chunk_with(bad);
            assert_eq!(ChunkedBody::new().feed(&body, &with_max_header(8192)), ChunkedProgress::Invalid, "{:?}", bad);
        }
    }

    #[test]
    fn trailer_fields_that_are_well_formed_pass() {
        for good in [
            &b"X-Checksum: 1234\r\n"[..],
            b"x:\r\n",
            b"X:v\r\n",
            b"X: a b\t c \r\n",
            b"X: caf\xc3\xa9\r\n",
            b"!#$%&'*+-.^_`|~09az: \"quoted\"\r\n",
        ] {
            let body = last_chunk_with(good);
            let progress = ChunkedBody::new().feed(&body, &with_max_header(8192));
            assert_eq!(progress, ChunkedProgress::Done { consumed: body.len() }, "{:?}", good);
        }
    }
}
