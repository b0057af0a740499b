//! `--body` text to bytes: the backslash escapes `\n`, `\r`, `\t`, `\\` and `\xHH`.

/// Turns `text` into bytes, replacing `\n`, `\r`, `\t` and `\\` by a newline,
/// a carriage return, a tab and a backslash, and `\xHH` by the byte `0xHH`.
/// Any other backslash is an error, so a typo is caught instead of sent.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let byte = match bytes.get(i + 1) {
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'\\') => b'\\',
            Some(b'x') => {
                let hex = bytes.get(i + 2..i + 4).and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex.filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
                let byte = byte.and_then(|h| u8::from_str_radix(h, 16).ok());
                let Some(byte) = byte else {
                    return Err(r"'\x' takes two hex digits, as in '\x0a'".to_string());
                };
                out.push(byte);
                i += 4;
                continue;
            }
            Some(_) => {
                let escape: String = text[i..].chars().take(2).collect();
                return Err(format!(r"unknown escape '{escape}' (known: \n \r \t \\ \xHH)"));
            }
            None => return Err(r"a '\' at the end escapes nothing (write '\\' for a backslash)".to_string()),
        };
        out.push(byte);
        i += 2;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_become_bytes() {
        assert_eq!(unescape(r"hello world\n").unwrap(), b"hello world\n");
        assert_eq!(unescape(r"a\r\n\tb\\c").unwrap(), b"a\r\n\tb\\c");
        assert_eq!(unescape(r"\x41\x0a\xff\x00").unwrap(), b"A\n\xff\x00");
        assert_eq!(unescape(r"\xAbz").unwrap(), b"\xabz");
        assert_eq!(unescape(r"\\n").unwrap(), b"\\n");
        assert_eq!(unescape("").unwrap(), b"");
        assert_eq!(unescape("plain, ünïcode").unwrap(), "plain, ünïcode".as_bytes());
    }

    #[test]
    fn unknown_or_unfinished_escapes_are_errors() {
        assert!(unescape(r"\q").unwrap_err().contains(r"'\q'"));
        assert!(unescape(r"a\é").unwrap_err().contains(r"'\é'"));
        assert!(unescape(r"a\").is_err());
        assert!(unescape(r"\x4").is_err());
        assert!(unescape(r"\x4g").is_err());
        assert!(unescape(r"\x+1").is_err());
        assert!(unescape(r"\xé").is_err());
    }
}
