//! A line decoder that never fails: an over-long line becomes a cut, marked item (the rest of
//! it is skipped), and invalid UTF-8 is left for the caller to show lossily. Unlike
//! `LinesCodec::new_with_max_length`, it yields no errors that would end a `while let` loop.

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

/// One line of child output, without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The raw bytes (maybe not UTF-8).
    pub bytes: Vec<u8>,
    /// Cut at the length limit.
    pub truncated: bool,
    /// Ended by a newline (false only for the last bytes before EOF, or a cut line).
    pub newline: bool,
}

impl Line {
    /// The text, and whether invalid UTF-8 had to be replaced.
    pub fn into_text(self) -> (String, bool) {
        match String::from_utf8(self.bytes) {
            Ok(s) => (s, false),
            Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
        }
    }
}

/// Splits a byte stream into [`Line`]s of at most `max` bytes.
#[derive(Debug)]
pub struct LineDecoder {
    max: usize,
    /// Skipping the rest of a line that was cut.
    discarding: bool,
    /// Where to resume the search for a newline.
    scanned: usize,
}

impl LineDecoder {
    /// A decoder keeping lines of up to `max` bytes whole.
    pub fn new(max: usize) -> Self {
        LineDecoder {
            max: max.max(1),
            discarding: false,
            scanned: 0,
        }
    }
}

impl Decoder for LineDecoder {
    type Item = Line;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, Self::Error> {
        loop {
            let newline = buf[self.scanned..].iter().position(|b| *b == b'\n');
            match newline {
                Some(offset) => {
                    let end = self.scanned + offset;
                    self.scanned = 0;
                    if self.discarding {
                        buf.advance(end + 1);
                        self.discarding = false;
                        continue;
                    }
                    if end > self.max {
                        return Ok(Some(self.cut(buf)));
                    }
                    let mut bytes = buf.split_to(end + 1);
                    bytes.truncate(end);
                    if bytes.last() == Some(&b'\r') {
                        bytes.truncate(end - 1);
                    }
                    return Ok(Some(Line {
                        bytes: bytes.to_vec(),
                        truncated: false,
                        newline: true,
                    }));
                }
                None if self.discarding => {
                    buf.clear();
                    self.scanned = 0;
                    return Ok(None);
                }
                None if buf.len() > self.max => return Ok(Some(self.cut(buf))),
                None => {
                    self.scanned = buf.len();
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, Self::Error> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        self.scanned = 0;
        if buf.is_empty() || self.discarding {
            buf.clear();
            self.discarding = false;
            return Ok(None);
        }
        let bytes = buf.split().to_vec();
        Ok(Some(Line {
            bytes,
            truncated: false,
            newline: false,
        }))
    }
}

impl LineDecoder {
    /// Takes the first `max` bytes (backing off to a UTF-8 boundary) and skips the rest.
    fn cut(&mut self, buf: &mut BytesMut) -> Line {
        let mut at = self.max;
        while at > self.max.saturating_sub(3) && at > 0 && (buf[at] & 0xC0) == 0x80 {
            at -= 1;
        }
        let bytes = buf.split_to(at).to_vec();
        self.discarding = true;
        self.scanned = 0;
        Line {
            bytes,
            truncated: true,
            newline: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(max: usize, chunks: &[&[u8]]) -> Vec<Line> {
        let mut d = LineDecoder::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            while let Some(l) = d.decode(&mut buf).unwrap() {
                out.push(l);
            }
        }
        while let Some(l) = d.decode_eof(&mut buf).unwrap() {
            out.push(l);
        }
        out
    }

    #[test]
    fn splits_across_chunks_and_keeps_the_last_partial_line() {
        let l = lines(100, &[b"ab", b"c\r\nde\n", b"f"]);
        let texts: Vec<_> = l.iter().map(|l| l.bytes.as_slice()).collect();
        assert_eq!(texts, vec![&b"abc"[..], b"de", b"f"]);
        assert!(l[0].newline && !l[2].newline);
    }

    #[test]
    fn long_lines_are_cut_once_and_the_next_line_survives() {
        let long = [b'x'; 50];
        let l = lines(10, &[&long[..20], &long[20..], b"\nnext\n"]);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].bytes, vec![b'x'; 10]);
        assert!(l[0].truncated);
        assert_eq!(l[1].bytes, b"next");
        assert!(!l[1].truncated);
    }

    #[test]
    fn a_line_of_exactly_max_bytes_is_whole() {
        let l = lines(4, &[b"abcd\nabcde\n"]);
        assert_eq!(l[0].bytes, b"abcd");
        assert!(!l[0].truncated);
        assert!(l[1].truncated);
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn cuts_back_off_to_a_char_boundary() {
        let l = lines(4, &["abcé…\n".as_bytes()]);
        assert_eq!(l[0].bytes, b"abc");
        let (text, invalid) = l[0].clone().into_text();
        assert_eq!(text, "abc");
        assert!(!invalid);
    }

    #[test]
    fn invalid_utf8_is_shown_lossily_and_marked() {
        let l = lines(100, &[b"ok \xff\xfe end\nfine\n"]);
        let (text, invalid) = l[0].clone().into_text();
        assert!(invalid);
        assert_eq!(text, "ok \u{fffd}\u{fffd} end");
        assert!(!l[1].clone().into_text().1);
    }
}
