//! `supervisor::lines::LineDecoder` on arbitrary child bytes, fed in arbitrary chunks.
//!
//! Input: byte 0 chooses the line limit `max`, byte 1 the chunking; the rest is the stream.
//! The stream is decoded three ways — in one chunk, byte by byte, and in chunks whose sizes
//! follow from byte 1 — each followed by `decode_eof` until it yields nothing.
//!
//! Checks: no panic; every item is at most `max` bytes; an item that is not truncated holds no
//! `\n`; a truncated one has no `\n` either and is not ended by a newline; all three chunkings
//! give the same items; and the items equal a plain reference (split on `\n`, drop one `\r`
//! before it, cut a segment longer than `max` at `max` backed off to a UTF-8 boundary of at
//! most 3 bytes, keep the last segment if not empty); `into_text` agrees with `from_utf8`.
#![no_main]

use agentdispatch_worker::supervisor::lines::{Line, LineDecoder};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fn decode(max: usize, stream: &[u8], chunk_len: impl Fn(usize) -> usize) -> Vec<Line> {
    let mut d = LineDecoder::new(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let n = chunk_len(i).max(1).min(stream.len() - pos);
        buf.extend_from_slice(&stream[pos..pos + n]);
        pos += n;
        i += 1;
        while let Some(l) = d.decode(&mut buf).expect("decode never fails") {
            out.push(l);
            assert!(
                out.len() <= stream.len() + 1,
                "decoder does not make progress"
            );
        }
    }
    while let Some(l) = d.decode_eof(&mut buf).expect("decode_eof never fails") {
        out.push(l);
        assert!(
            out.len() <= stream.len() + 1,
            "decoder does not make progress"
        );
    }
    assert!(buf.is_empty(), "bytes left after EOF");
    out
}

fn reference(max: usize, stream: &[u8]) -> Vec<Line> {
    let mut out = Vec::new();
    let mut segments: Vec<&[u8]> = stream.split(|b| *b == b'\n').collect();
    let last = segments.pop().unwrap_or(&[]);
    let cut = |seg: &[u8]| {
        let mut at = max;
        while at > max.saturating_sub(3) && at > 0 && (seg[at] & 0xC0) == 0x80 {
            at -= 1;
        }
        Line {
            bytes: seg[..at].to_vec(),
            truncated: true,
            newline: false,
        }
    };
    for seg in segments {
        if seg.len() > max {
            out.push(cut(seg));
        } else {
            let body = seg.strip_suffix(b"\r").unwrap_or(seg);
            out.push(Line {
                bytes: body.to_vec(),
                truncated: false,
                newline: true,
            });
        }
    }
    if last.len() > max {
        out.push(cut(last));
    } else if !last.is_empty() {
        out.push(Line {
            bytes: last.to_vec(),
            truncated: false,
            newline: false,
        });
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (head, stream) = data.split_at(data.len().min(2));
    let b0 = head.first().copied().unwrap_or(0) as usize;
    let b1 = head.get(1).copied().unwrap_or(0) as usize;
    // Mostly tiny limits, where cuts and UTF-8 back-off happen; sometimes up to ~4 KiB.
    let max = if b0 < 0xC0 { b0 % 32 } else { (b0 - 0xC0) * 64 };
    let effective = max.max(1);

    let whole = decode(max, stream, |_| usize::MAX);
    let bytewise = decode(max, stream, |_| 1);
    let chunked = decode(max, stream, |i| {
        1 + (b1 * (i + 1) * 7 + (i >> 1)) % (b1 % 61 + 1)
    });

    for l in &whole {
        assert!(
            l.bytes.len() <= effective,
            "{} > max {effective}",
            l.bytes.len()
        );
        assert!(!l.bytes.contains(&b'\n'), "item holds a newline: {l:?}");
        if l.truncated {
            assert!(!l.newline);
        }
        let (text, lossy) = l.clone().into_text();
        match std::str::from_utf8(&l.bytes) {
            Ok(s) => assert!(!lossy && text == s),
            Err(_) => assert!(lossy),
        }
    }
    assert_eq!(whole, bytewise, "one chunk vs byte by byte");
    assert_eq!(whole, chunked, "one chunk vs chunked");
    assert_eq!(whole, reference(effective, stream), "decoder vs reference");
});
