//! W3C trace context as it arrives and as it is handed on: `traceparent`, `tracestate` and
//! `baggage` read from a request's headers (bounded, checked), new ids, and the
//! `TRACEPARENT`/`TRACESTATE`/`BAGGAGE` environment carrier of a child.

use warp::http::HeaderMap;

/// Longest `tracestate` kept (W3C: 32 members of at most 256 characters; a platform must
/// propagate at least 512 characters). A longer one is dropped, not cut: a cut member would be
/// a wrong one.
const MAX_TRACESTATE: usize = 512;
/// Longest `baggage` kept (W3C baggage: at least 8192 bytes in all must be propagated).
const MAX_BAGGAGE: usize = 8192;
/// Longest baggage value the worker reads for a span attribute.
const MAX_ATTRIBUTE: usize = 256;

/// A trace id and span id, and whether the trace is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    /// 16 bytes, not all zero.
    pub trace_id: [u8; 16],
    /// 8 bytes, not all zero.
    pub span_id: [u8; 8],
    /// The `sampled` flag (bit 0 of the trace flags).
    pub sampled: bool,
}

impl SpanContext {
    /// The `traceparent` value naming this span (version 00).
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{}",
            hex(&self.trace_id),
            hex(&self.span_id),
            if self.sampled { "01" } else { "00" }
        )
    }

    /// A new span of the same trace.
    pub fn child(&self) -> SpanContext {
        SpanContext {
            span_id: new_span_id(),
            ..*self
        }
    }

    /// A span of a new trace (sampled: the worker keeps what it starts).
    pub fn root() -> SpanContext {
        SpanContext {
            trace_id: *uuid::Uuid::new_v4().as_bytes(),
            span_id: new_span_id(),
            sampled: true,
        }
    }
}

fn new_span_id() -> [u8; 8] {
    // A v4 UUID is 122 random bits from the system's generator; its first 8 bytes are random
    // and never all zero with any likelihood that matters (and a zero id is replaced).
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[..8]);
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    // W3C: lower-case hex only; upper case makes the header invalid.
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let bytes = s.as_bytes();
    if bytes.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// A `traceparent` value per W3C Trace Context level 1, or `None` when it is not a valid one
/// (then the trace starts anew, as the recommendation says).
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let value = value.trim();
    let version = value.get(..2)?;
    let v = unhex::<1>(version)?[0];
    // Version ff is invalid; a version 00 header is exactly 55 characters; a later version may
    // be longer, with a '-' after the fields this version knows.
    if v == 0xff || (v == 0 && value.len() != 55) || value.len() < 55 {
        return None;
    }
    if value.len() > 55 && value.as_bytes()[55] != b'-' {
        return None;
    }
    let b = value.as_bytes();
    if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let trace_id = unhex::<16>(&value[3..35])?;
    let span_id = unhex::<8>(&value[36..52])?;
    let flags = unhex::<1>(&value[53..55])?[0];
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(SpanContext {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

/// An X-Ray trace header (`X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;
/// Parent=53995c3f42cd8ad8;Sampled=1`, what AgentCore and AWS services send) as a W3C span
/// context: the trace id is the root's time and random parts, as ADOT maps them. `None` without
/// a valid root and parent; `Sampled=0` is not sampled, anything else is.
pub fn parse_xray(value: &str) -> Option<SpanContext> {
    let (mut root, mut parent, mut sampled) = (None, None, true);
    for field in value.split(';') {
        match field.trim().split_once('=') {
            Some(("Root", v)) => root = Some(v.trim()),
            Some(("Parent", v)) => parent = unhex::<8>(v.trim()),
            Some(("Sampled", v)) => sampled = v.trim() != "0",
            _ => {}
        }
    }
    let mut parts = root?.split('-');
    let (version, time, random) = (parts.next()?, parts.next()?, parts.next()?);
    if version != "1" || parts.next().is_some() || time.len() != 8 || random.len() != 24 {
        return None;
    }
    let trace_id = unhex::<16>(&format!("{time}{random}"))?;
    let span_id = parent?;
    (trace_id != [0; 16] && span_id != [0; 8]).then_some(SpanContext {
        trace_id,
        span_id,
        sampled,
    })
}

/// The trace context a request came with: its span (the parent of the worker's), and the
/// `tracestate` and `baggage` passed on unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incoming {
    /// The caller's span, when a valid `traceparent` came.
    pub parent: Option<SpanContext>,
    /// `tracestate`, when it came with a valid `traceparent` and within bounds.
    pub tracestate: Option<String>,
    /// `baggage`, within bounds.
    pub baggage: Option<String>,
}

/// The values of every `name` header joined with ',' (W3C: list headers may be split over
/// several lines), or `None` when absent, not visible ASCII, or longer than `max` bytes.
fn joined(headers: &HeaderMap, name: &str, max: usize) -> Option<String> {
    let mut out = String::new();
    for value in headers.get_all(name) {
        let s = value.to_str().ok()?.trim();
        if s.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(s);
        if out.len() > max {
            return None;
        }
    }
    (!out.is_empty()).then_some(out)
}

impl Incoming {
    /// The trace context of a request's headers. Anything malformed or oversized is left
    /// out (never an error: a caller's tracing must not fail its invocation).
    pub fn from_headers(headers: &HeaderMap) -> Incoming {
        let mut parents = headers.get_all("traceparent").iter();
        // Two traceparent headers are invalid: which one is meant cannot be told.
        let parent = match (parents.next(), parents.next()) {
            (Some(one), None) => one.to_str().ok().and_then(parse_traceparent),
            _ => None,
        };
        // Without a W3C parent, the X-Ray header AgentCore sends names the caller's trace.
        let parent = parent.or_else(|| {
            let xray = headers.get("x-amzn-trace-id")?.to_str().ok()?;
            parse_xray(xray)
        });
        Incoming {
            parent,
            // W3C: without a valid traceparent, tracestate is discarded.
            tracestate: parent.and(joined(headers, "tracestate", MAX_TRACESTATE)),
            baggage: joined(headers, "baggage", MAX_BAGGAGE),
        }
    }

    /// The value of baggage member `key`, percent-decoded, when it is present and short.
    pub fn baggage_value(&self, key: &str) -> Option<String> {
        let baggage = self.baggage.as_deref()?;
        for member in baggage.split(',') {
            // `key=value;property;…`: properties are not part of the value.
            let kv = member.split(';').next().unwrap_or_default();
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            if k.trim() == key {
                let v = percent_decode(v.trim())?;
                return (!v.is_empty() && v.len() <= MAX_ATTRIBUTE).then_some(v);
            }
        }
        None
    }
}

/// `%XX`-decoded `s` as UTF-8; `None` when it is not valid.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = (*b.get(i + 1)? as char).to_digit(16)?;
            let lo = (*b.get(i + 2)? as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The variables of OpenTelemetry's environment carrier.
pub const CHILD_VARS: [&str; 3] = ["TRACEPARENT", "TRACESTATE", "BAGGAGE"];

/// OpenTelemetry's environment carrier for a child: `TRACEPARENT` naming `span` (when there
/// is one), and the caller's `TRACESTATE` and `BAGGAGE`.
pub fn child_env(span: Option<&SpanContext>, incoming: &Incoming) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if let Some(span) = span {
        env.push(("TRACEPARENT".into(), span.traceparent()));
        if let Some(state) = &incoming.tracestate {
            env.push(("TRACESTATE".into(), state.clone()));
        }
    }
    if let Some(baggage) = &incoming.baggage {
        env.push(("BAGGAGE".into(), baggage.clone()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_read_and_written_back_the_same() {
        let ctx = parse_traceparent(GOOD).expect("valid");
        assert!(ctx.sampled);
        assert_eq!(ctx.traceparent(), GOOD);
        let child = ctx.child();
        assert_eq!(child.trace_id, ctx.trace_id);
        assert_ne!(child.span_id, ctx.span_id);
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0é",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?}");
        }
        // A later version may carry more fields after a '-'.
        assert!(parse_traceparent(&format!("01{}-more", &GOOD[2..])).is_some());
    }

    #[test]
    fn headers_give_parent_state_and_baggage_within_bounds() {
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static(GOOD));
        h.append("tracestate", HeaderValue::from_static("a=1"));
        h.append("tracestate", HeaderValue::from_static("b=2"));
        h.insert(
            "baggage",
            HeaderValue::from_static("aws.tenant.id=t%201;p=q, user.id=u"),
        );
        let i = Incoming::from_headers(&h);
        assert_eq!(i.parent, parse_traceparent(GOOD));
        assert_eq!(i.tracestate.as_deref(), Some("a=1,b=2"));
        assert_eq!(i.baggage_value("aws.tenant.id").as_deref(), Some("t 1"));
        assert_eq!(i.baggage_value("user.id").as_deref(), Some("u"));
        assert_eq!(i.baggage_value("session.id"), None);

        h.insert(
            "baggage",
            HeaderValue::from_str(&"k=v,".repeat(3000)).expect("ascii"),
        );
        h.insert(
            "tracestate",
            HeaderValue::from_str(&"x".repeat(600)).expect("ascii"),
        );
        let i = Incoming::from_headers(&h);
        assert_eq!((i.baggage, i.tracestate), (None, None));

        // Without a valid traceparent a tracestate means nothing; baggage still travels.
        h.insert("traceparent", HeaderValue::from_static("garbage"));
        h.insert("tracestate", HeaderValue::from_static("a=1"));
        h.insert("baggage", HeaderValue::from_static("k=v"));
        let i = Incoming::from_headers(&h);
        assert_eq!(i.parent, None);
        assert_eq!(i.tracestate, None);
        assert_eq!(
            child_env(None, &i),
            vec![("BAGGAGE".to_string(), "k=v".to_string())]
        );
    }

    #[test]
    fn an_xray_header_is_the_parent_when_no_traceparent_came() {
        let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let ctx = parse_xray(xray).expect("valid");
        assert_eq!(
            ctx.traceparent(),
            "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
        );
        assert!(
            !parse_xray(&xray.replace("Sampled=1", "Sampled=0"))
                .expect("valid")
                .sampled
        );
        for bad in [
            "Root=1-5759e988-bd862e3fe1be46a994272793",
            "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3f;Parent=53995c3f42cd8ad8",
            "Parent=53995c3f42cd8ad8",
        ] {
            assert_eq!(parse_xray(bad), None, "{bad:?}");
        }
        let mut h = HeaderMap::new();
        h.insert("x-amzn-trace-id", HeaderValue::from_static(xray));
        assert_eq!(Incoming::from_headers(&h).parent, Some(ctx));
        h.insert("traceparent", HeaderValue::from_static(GOOD));
        assert_eq!(Incoming::from_headers(&h).parent, parse_traceparent(GOOD));
    }

    #[test]
    fn two_traceparents_are_none() {
        let mut h = HeaderMap::new();
        h.append("traceparent", HeaderValue::from_static(GOOD));
        h.append("traceparent", HeaderValue::from_static(GOOD));
        assert_eq!(Incoming::from_headers(&h).parent, None);
    }
}
