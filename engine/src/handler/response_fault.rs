//! Why a handler's [`Response`](crate::handler::Response) turned into
//! `500`: the first thing it wrote that could not be sent, and the error
//! its `io::Write` gives from then on, naming that cause.

use std::fmt;
use std::io;

/// The first fault in a response; the answer becomes `500 Internal Server Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResponseFault {
    /// A status outside 200 to 599.
    Status(u16),
    /// A header field name that is not a token (RFC 9110 §5.6.2).
    FieldName,
    /// A header field value with a control character (CR, LF, NUL...; RFC 9110 §5.5).
    FieldValue,
    /// The header fields past their 4 KiB.
    FieldsFull,
    /// The body past `--max-response`.
    BodyFull,
}

impl ResponseFault {
    /// The error an `io::Write` into the response gives once it has this
    /// fault: `WriteZero` for a full body (nothing more fits), else
    /// `InvalidInput` (what was written cannot be sent).
    pub(crate) fn io_error(self) -> io::Error {
        let kind = match self {
            ResponseFault::BodyFull => io::ErrorKind::WriteZero,
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, self.to_string())
    }
}

impl fmt::Display for ResponseFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseFault::Status(code) => write!(f, "the response's status {code} is not from 200 to 599"),
            ResponseFault::FieldName => f.write_str("a header field's name is not a token (RFC 9110 §5.6.2)"),
            ResponseFault::FieldValue => {
                f.write_str("a header field's value holds a control character (CR, LF, NUL: RFC 9110 §5.5)")
            }
            ResponseFault::FieldsFull => f.write_str("the response's header fields are larger than their 4 KiB"),
            ResponseFault::BodyFull => f.write_str("the response body is larger than --max-response (max_response)"),
        }?;
        f.write_str(": the answer becomes 500")
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use crate::handler::Response;

    /// The error a write of `b"ok"` gives after `spoil` wrote into a response
    /// of 64 bytes of fields and 4 of body.
    fn write_after(spoil: impl FnOnce(&mut Response<'_>)) -> std::io::Error {
        let (mut head, mut body) = ([0u8; 64], [0u8; 4]);
        let mut res = Response::new(&mut head, &mut body);
        spoil(&mut res);
        match res.write_all(b"ok") {
            Ok(()) => panic!("the write succeeded"),
            Err(e) => e,
        }
    }

    #[test]
    fn each_write_error_names_its_own_cause() {
        type Spoil = fn(&mut Response<'_>);
        let cases: [(&str, Spoil, std::io::ErrorKind, &str); 5] = [
            (
                "a CR LF in a value",
                |r| {
                    r.header("X-Bad", "a\r\nInjected: yes");
                },
                InvalidInput,
                "control character",
            ),
            (
                "a space in a name",
                |r| {
                    r.header("Bad Name", "v");
                },
                InvalidInput,
                "name is not a token",
            ),
            (
                "fields past their room",
                |r| {
                    r.header("X-Long", "v".repeat(70));
                },
                InvalidInput,
                "4 KiB",
            ),
            (
                "a status of 99",
                |r| {
                    r.status(99);
                },
                InvalidInput,
                "status 99 is not from 200 to 599",
            ),
            (
                "a body past its room",
                |r| {
                    r.body(b"12345");
                },
                WriteZero,
                "larger than --max-response",
            ),
        ];
        use std::io::ErrorKind::{InvalidInput, WriteZero};
        for (what, spoil, kind, cause) in cases {
            let e = write_after(spoil);
            let text = e.to_string();
            assert_eq!(e.kind(), kind, "{what}: {text}");
            assert!(text.contains(cause), "{what}: {text}");
            assert!(text.ends_with("the answer becomes 500"), "{what}: {text}");
            if kind != WriteZero {
                assert!(!text.contains("max-response"), "{what} is not about --max-response: {text}");
            }
        }
    }

    #[test]
    fn the_first_cause_is_kept() {
        let e = write_after(|r| {
            r.header("Bad Name", "v");
            r.body(b"12345");
        });
        assert!(e.to_string().contains("name is not a token"), "{e}");
    }
}
