//! One byte of a chunked body's framing, outside chunk data: the size line
//! read, the data's line end, the trailer section's field lines, each byte
//! counted against the limits as it comes.

use super::extension::{extension_step, is_field_value_byte};
use super::state::State;
use super::{ChunkedBody, ChunkedProgress};
use crate::http::is_tchar;
use crate::http::limits::{Limits, MAX_HEADERS};

impl ChunkedBody {
    /// One byte outside chunk data; `Ok(true)` when the body has ended.
    pub(super) fn step(&mut self, byte: u8, limits: &Limits) -> Result<bool, ChunkedProgress> {
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

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}
