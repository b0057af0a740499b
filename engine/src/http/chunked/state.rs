//! Where a chunked body's decoder stands in the framing: the size line and
//! its extensions, the data and its line end, the trailer section.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
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
