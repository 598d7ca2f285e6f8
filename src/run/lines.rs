//! Texts one per line (a `--file`, stdin), read a window at a time, so a
//! run holds one window of texts however long its input is.
//!
//! Lines end at `\n`; a trailing `\r` is dropped (Windows files), and a
//! last line without its `\n` counts. A window ends after `max_lines`
//! lines or once it holds `max_bytes` bytes, so a window of very long
//! lines stays bounded too.

use std::io::{BufRead, Read};

/// Lines per window of `bertc run`: enough that sorting them by length
/// packs batches as well as sorting the whole input would (the text mix's
/// 2,000 lines are one window), and few enough that a window's texts and
/// encodings stay a few MB.
pub const WINDOW_LINES: usize = 4096;
/// Bytes of text per window at most (besides its last line).
pub const WINDOW_BYTES: usize = 16 << 20;
/// The longest line read: a model reads at most a few thousand
/// characters of a line; a file without line breaks is refused, not held.
pub const MAX_LINE_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LinesError {
    #[error("line {line}: cannot read: {error}")]
    Io { line: usize, error: std::io::Error },
    #[error("line {line} is not UTF-8 text")]
    NotUtf8 { line: usize },
    #[error("line {line} is longer than {MAX_LINE_BYTES} bytes (one text per line is expected)")]
    TooLong { line: usize },
}

/// Windows of lines from `reader`.
pub struct LineWindows<R> {
    reader: R,
    max_lines: usize,
    max_bytes: usize,
    /// Lines read so far.
    lines: usize,
    done: bool,
}

impl<R: BufRead> LineWindows<R> {
    pub fn new(reader: R, max_lines: usize, max_bytes: usize) -> LineWindows<R> {
        LineWindows {
            reader,
            max_lines: max_lines.max(1),
            max_bytes,
            lines: 0,
            done: false,
        }
    }

    /// Lines read so far (those of the windows returned).
    pub fn lines_read(&self) -> usize {
        self.lines
    }

    /// The next line, `None` at the end.
    fn next_line(&mut self) -> Result<Option<String>, LinesError> {
        let line = self.lines + 1;
        let mut bytes = vec![];
        // One byte past the limit tells a line at the limit from a longer one.
        let mut limited = self.reader.by_ref().take(MAX_LINE_BYTES as u64 + 2);
        let n = limited
            .read_until(b'\n', &mut bytes)
            .map_err(|error| LinesError::Io { line, error })?;
        if n == 0 {
            return Ok(None);
        }
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        } else if bytes.len() > MAX_LINE_BYTES {
            return Err(LinesError::TooLong { line });
        }
        while bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        if bytes.len() > MAX_LINE_BYTES {
            return Err(LinesError::TooLong { line });
        }
        self.lines = line;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| LinesError::NotUtf8 { line })
    }
}

impl<R: BufRead> Iterator for LineWindows<R> {
    type Item = Result<Vec<String>, LinesError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut window = vec![];
        let mut bytes = 0;
        while window.len() < self.max_lines && bytes < self.max_bytes {
            match self.next_line() {
                Ok(Some(line)) => {
                    bytes += line.len();
                    window.push(line);
                }
                Ok(None) => {
                    self.done = true;
                    break;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        (!window.is_empty()).then_some(Ok(window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(text: &[u8], max_lines: usize, max_bytes: usize) -> Vec<Result<Vec<String>, LinesError>> {
        LineWindows::new(text, max_lines, max_bytes).collect()
    }

    fn ok(w: Vec<Result<Vec<String>, LinesError>>) -> Vec<Vec<String>> {
        w.into_iter().map(|w| w.unwrap()).collect()
    }

    #[test]
    fn lines_come_in_windows_as_str_lines_splits_them() {
        let text = "a\r\nbb\n\nccc\r\nd";
        let expected: Vec<String> = text
            .lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .collect();
        let got = ok(windows(text.as_bytes(), 2, usize::MAX));
        assert_eq!(got.len(), 3);
        assert_eq!(got.concat(), expected);
        assert_eq!(got[0], ["a", "bb"]);
        assert!(ok(windows(b"", 4, 100)).is_empty());
        assert_eq!(ok(windows(b"x\n", 4, 100)), [["x"]]);
    }

    #[test]
    fn a_window_ends_at_its_byte_budget() {
        let got = ok(windows(b"aaaa\nbbbb\ncc\nd\n", 100, 6));
        assert_eq!(got, vec![vec!["aaaa", "bbbb"], vec!["cc", "d"]]);
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        let w = windows(b"fine\n\xff\xfe\nnever read\n", 100, 100);
        assert_eq!(w.len(), 1);
        assert!(matches!(w[0], Err(LinesError::NotUtf8 { line: 2 })), "{w:?}");

        let mut long = b"short\n".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 1));
        let w = windows(&long, 100, usize::MAX);
        assert!(matches!(w[0], Err(LinesError::TooLong { line: 2 })), "{w:?}");

        let mut at_limit = vec![b'y'; MAX_LINE_BYTES];
        at_limit.extend(b"\r\nz");
        let got = ok(windows(&at_limit, 100, usize::MAX));
        assert_eq!(got[0].len(), 2);
        assert_eq!(got[0][0].len(), MAX_LINE_BYTES);
    }
}
