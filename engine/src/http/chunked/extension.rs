//! The grammar of a chunk-size line past its size: its extensions, each
//! byte judged as it comes.

use super::state::State;
use crate::http::is_tchar;

/// The state after `byte` on a chunk-size line past its size (RFC 9112
/// §7.1.1): `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`,
/// then CR; `None` when the byte breaks that grammar. Whitespace no `;`
/// follows, a `;` no name follows, a `=` no value follows: each is read one
/// way by one parser and another by the next, the shape of a smuggled
/// request; a bare LF too (§7.1 ends chunk lines with CRLF, and §2.2 lets an
/// LF stand alone in a header block only).
pub(super) fn extension_step(state: State, byte: u8) -> Option<State> {
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

/// A byte a field value may hold (RFC 9110 §5.5): visible, SP, HTAB or obs-text.
pub(super) fn is_field_value_byte(byte: u8) -> bool {
    matches!(byte, b'\t' | b' '..=b'~' | 0x80..=0xff)
}
