//! Finding a stray quote in the raw bytes of one CSV row.
//!
//! A `"` at the start of a cell opens a quoted field that runs to the next lone `"`, across
//! line ends: that is how a notes column holds several lines, and also how one stray quote
//! swallows the good rows after it into a single cell. The csv crate parses both alike;
//! this scanner re-reads a suspect row's raw bytes (only rows whose cells hold a line end,
//! or rows with the wrong number of cells) to say where a quote opened and whether the
//! field it opened looks like a real multi-line cell.
//!
//! Invariants:
//! - The scanner follows the csv crate's quoting (RFC 4180 with `""` as an escaped quote;
//!   a quote anywhere but at the start of a cell is a plain character; text after a
//!   closing quote joins the cell), so the cell numbers it gives match the parsed row.
//! - It reads at most [`MAX_QUOTED_BYTES`] past the opening quote of a field it is
//!   following, whatever the row's length, and never fails on any input.

use std::io::{self, BufRead};

/// Line ends a quoted cell may hold before its quote is taken for a stray one. A notes
/// cell of a CRM export runs to a few dozen lines; a hundred is well past any real one.
pub const MAX_QUOTED_LINES: u64 = 100;

/// Bytes a quoted cell that spans lines may hold before its quote is taken for a stray
/// one (64 KiB: a long pasted email thread fits; a swallowed file does not).
pub const MAX_QUOTED_BYTES: u64 = 64 * 1024;

/// What is wrong with a quoted cell that runs over line ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The file ends inside the quotes.
    Unclosed,
    /// More than [`MAX_QUOTED_LINES`] line ends or [`MAX_QUOTED_BYTES`] bytes.
    TooLong,
    /// The closing quote has other text right after it (on this line), as when a stray
    /// quote pairs with the opening quote of a later, well-quoted cell.
    TextAfterClose { line: u64 },
}

/// A quoted cell that holds at least one line end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotedSpan {
    /// 1-based cell number in the row.
    pub cell: usize,
    /// Line of the opening quote.
    pub line: u64,
    /// Line ends inside the cell (as far as the scan went).
    pub breaks: u64,
    /// Byte offset (in the file) of the line after the opening quote's line.
    pub next_line_byte: u64,
    pub fault: Option<Fault>,
}

/// What the scan found in one row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowScan {
    /// The first faulty multi-line cell, or else the first multi-line cell.
    pub span: Option<QuotedSpan>,
    /// The first cell holding a quote that is not at its start (it quotes nothing).
    pub inner_quote: Option<usize>,
    /// The cell whose quote is still open where the row (the file) ends on its own line.
    pub open_at_end: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    CellStart,
    Unquoted,
    Quoted,
    /// Just after a `"` inside a quoted cell: an escaped quote, or the closing one.
    QuoteInQuoted,
}

/// Scans the raw bytes of one row, starting at file offset `start_byte` on line
/// `start_line`. Stops at the end of `raw` (the row's end), at the first faulty span, or
/// once a followed span passes the limits.
pub fn scan_row(mut raw: impl BufRead, start_byte: u64, start_line: u64) -> io::Result<RowScan> {
    let mut scan = RowScan::default();
    let (mut state, mut cell, mut line, mut offset) = (State::CellStart, 1usize, start_line, start_byte);
    // The quoted cell being read: its span and where it opened.
    let mut open: Option<(QuotedSpan, u64)> = None;
    // Line ends as an editor counts them: `\r\n`, `\n` or a lone `\r` (old-Mac exports).
    let mut prev = 0u8;
    loop {
        let chunk = raw.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len();
        for &b in chunk {
            match state {
                State::CellStart | State::Unquoted => match b {
                    b'"' if state == State::CellStart => {
                        state = State::Quoted;
                        let span = QuotedSpan { cell, line, breaks: 0, next_line_byte: 0, fault: None };
                        open = Some((span, offset));
                    }
                    b'"' => {
                        scan.inner_quote.get_or_insert(cell);
                    }
                    b',' => {
                        cell += 1;
                        state = State::CellStart;
                    }
                    b'\r' => line += 1,
                    b'\n' if prev != b'\r' => line += 1,
                    b'\n' => {}
                    _ => state = State::Unquoted,
                },
                State::Quoted => {
                    if b == b'"' {
                        state = State::QuoteInQuoted;
                    } else if let Some((span, opened)) = &mut open {
                        if b == b'\r' || (b == b'\n' && prev != b'\r') {
                            line += 1;
                            span.breaks += 1;
                            if span.breaks == 1 {
                                span.next_line_byte = offset + 1;
                            }
                        } else if b == b'\n' && span.breaks == 1 && span.next_line_byte == offset {
                            // The `\n` of the first break's `\r\n`: the next line starts after it.
                            span.next_line_byte = offset + 1;
                        }
                        if span.breaks > MAX_QUOTED_LINES || (span.breaks > 0 && offset - *opened > MAX_QUOTED_BYTES) {
                            span.fault = Some(Fault::TooLong);
                            scan.span = Some(span.clone());
                            return Ok(scan);
                        }
                    }
                }
                State::QuoteInQuoted => {
                    if b == b'"' {
                        state = State::Quoted; // `""`: an escaped quote
                    } else {
                        let clean = matches!(b, b',' | b'\n' | b'\r');
                        if let Some((span, _)) = open.take().filter(|(span, _)| span.breaks > 0) {
                            if !clean {
                                let fault = Some(Fault::TextAfterClose { line });
                                scan.span = Some(QuotedSpan { fault, ..span });
                                return Ok(scan);
                            }
                            scan.span.get_or_insert(span);
                        }
                        match b {
                            b',' => {
                                cell += 1;
                                state = State::CellStart;
                            }
                            b'\n' | b'\r' => {
                                line += 1;
                                state = State::CellStart;
                            }
                            _ => state = State::Unquoted,
                        }
                    }
                }
            }
            offset += 1;
            prev = b;
        }
        raw.consume(n);
    }
    if state == State::Quoted {
        if let Some((span, _)) = open {
            if span.breaks > 0 {
                scan.span = Some(QuotedSpan { fault: Some(Fault::Unclosed), ..span });
            } else {
                scan.open_at_end = Some(span.cell);
            }
        }
    } else if state == State::QuoteInQuoted {
        // The row ends right after a quote: the quote closed the cell cleanly.
        if let Some((span, _)) = open {
            if span.breaks > 0 {
                scan.span.get_or_insert(span);
            }
        }
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(raw: &str) -> RowScan {
        scan_row(raw.as_bytes(), 100, 7).unwrap()
    }

    #[test]
    fn after_a_crlf_or_a_lone_cr_the_next_line_starts_after_the_whole_line_end() {
        for (raw, next) in [("A,\"x\r\ny", 100 + 6), ("A,\"x\ry", 100 + 5), ("A,\"x\ny", 100 + 5)] {
            let span = scan(raw).span.unwrap();
            assert_eq!((span.line, span.breaks, span.next_line_byte), (7, 1, next), "{raw:?}");
        }
    }

    #[test]
    fn a_clean_multi_line_cell_is_found_without_fault() {
        let s = scan("A,\"two\nlines\",x\n");
        assert_eq!(s.span, Some(QuotedSpan { cell: 2, line: 7, breaks: 1, next_line_byte: 100 + 7, fault: None }));
        assert_eq!(s.inner_quote, None);
    }

    #[test]
    fn escaped_quotes_and_single_line_quotes_are_not_spans() {
        assert_eq!(scan("A,\"say \"\"hi\"\"\",\"b, c\"\n"), RowScan::default());
    }

    #[test]
    fn a_quote_closed_inside_other_text_is_a_fault_at_its_opening() {
        // The stray quote on line 7 pairs with the quote before `Six` two lines down.
        let s = scan("B,\"Two,2\nC,Three,3\nD,\"Six, Inc.\",6\n");
        let span = s.span.unwrap();
        assert_eq!((span.cell, span.line, span.breaks), (2, 7, 2));
        assert_eq!(span.fault, Some(Fault::TextAfterClose { line: 9 }));
        assert_eq!(span.next_line_byte, 100 + "B,\"Two,2\n".len() as u64);
    }

    #[test]
    fn a_quote_left_open_to_the_end_is_unclosed_and_a_long_one_too_long() {
        assert_eq!(scan("A,x,\"open\nB,y\n").span.unwrap().fault, Some(Fault::Unclosed));
        assert_eq!(scan("A,\"open").open_at_end, Some(2), "the last line, with no line end");
        let long = format!("A,\"{}\"\n", "row\n".repeat(MAX_QUOTED_LINES as usize + 5));
        let span = scan(&long).span.unwrap();
        assert_eq!((span.fault, span.breaks), (Some(Fault::TooLong), MAX_QUOTED_LINES + 1));
        let wide = format!("A,\"x\n{}\"\n", "y".repeat(MAX_QUOTED_BYTES as usize + 5));
        assert_eq!(scan(&wide).span.unwrap().fault, Some(Fault::TooLong));
    }

    #[test]
    fn a_quote_inside_a_cell_is_named() {
        assert_eq!(scan("A,Bad \"x, y\" name,SMB\n").inner_quote, Some(2));
    }
}
