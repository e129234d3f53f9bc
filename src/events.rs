//! The event sink: the one place that numbers events and fans them out to the in-memory buffer
//! (responses, `task.status`), live subscribers (SSE) and the task's `events.ndjson`. Live text
//! (deltas, [`crate::live`]) passes through it too, to live subscribers only.
//!
//! The buffer keeps the most recent events up to a byte cap; anything older is read back from
//! `events.ndjson`, so a slow subscriber or a late `task.status` loses nothing.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::value::RawValue;
use tokio::sync::watch;

use crate::live::Delta;
use crate::task::EventsLog;
use crate::wire::{EventDraft, EventJson, EventPayload, EventRef, EventType};

/// Current time as RFC 3339 UTC with milliseconds. A flood emits thousands of events per
/// millisecond, so the text is formatted once per millisecond and per thread.
pub fn now_ts() -> String {
    thread_local! {
        static CACHE: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let now = chrono::Utc::now();
    let ms = now.timestamp_millis();
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != ms {
            *c = (ms, now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        }
        c.1.clone()
    })
}

/// Bytes of events a finished task keeps in memory.
pub const RETAINED_BYTES: usize = 64 * 1024;

/// One entry of the sparse `seq` → byte offset index of `events.ndjson` every this many events.
const INDEX_EVERY: u64 = 1024;

struct State {
    next_seq: u64,
    /// Bytes written to `events.ndjson` so far.
    log_bytes: u64,
    /// `(seq, offset)` of every [`INDEX_EVERY`]th event, so readers seek instead of rescanning.
    index: Vec<(u64, u64)>,
    buffer: VecDeque<(u64, EventJson)>,
    buffer_bytes: usize,
    log: Option<BufWriter<File>>,
    /// Where events that left memory are read back from, once the folder has its log.
    reader: Option<EventsLog>,
    log_error: Option<String>,
}

/// Events of one task.
pub struct EventSink {
    task_id: Arc<str>,
    cap_bytes: usize,
    state: Mutex<State>,
    last_seq: watch::Sender<u64>,
    live: crate::live::Live,
}

/// Events after some sequence number.
#[derive(Default)]
pub struct Since {
    /// The events, in order.
    pub events: Vec<EventJson>,
    /// Whether the byte cap left some out (the rest stay on disk).
    pub truncated: bool,
    /// Why the older events could not be read back (the log is not a regular file any more).
    pub error: Option<String>,
}

impl EventSink {
    /// A sink keeping `cap_bytes` in memory; it writes no log until [`attach`](Self::attach).
    pub fn new(task_id: &str, cap_bytes: usize) -> Self {
        EventSink {
            task_id: Arc::from(task_id),
            cap_bytes,
            state: Mutex::new(State {
                next_seq: 1,
                log_bytes: 0,
                index: Vec::new(),
                buffer: VecDeque::new(),
                buffer_bytes: 0,
                log: None,
                reader: None,
                log_error: None,
            }),
            last_seq: watch::channel(0).0,
            live: crate::live::Live::default(),
        }
    }

    /// Appends every event from now on to `log` (the task folder's fresh `events.ndjson`),
    /// and reads events that left memory back through `reader`. Call before the first event.
    pub fn attach(&self, log: File, reader: EventsLog) {
        let mut st = self.lock();
        st.log = Some(BufWriter::with_capacity(64 * 1024, log));
        st.reader = Some(reader);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers, stamps and records one event; subscribers see it at the next [`flush`](Self::flush).
    pub fn emit(&self, draft: &EventDraft) -> u64 {
        let ts = now_ts();
        let mut st = self.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        let json = crate::wire::to_raw(&EventRef {
            kind: draft.kind,
            message: draft.message.as_deref(),
            payload: draft.payload.as_ref(),
            seq,
            ts: &ts,
            task_id: &self.task_id,
        });
        if seq % INDEX_EVERY == 1 {
            let at = st.log_bytes;
            st.index.push((seq, at));
        }
        st.log_bytes += json.get().len() as u64 + 1;
        if let Some(log) = st.log.as_mut() {
            let written = log
                .write_all(json.get().as_bytes())
                .and_then(|_| log.write_all(b"\n"));
            if let Err(e) = written {
                st.log_error = Some(format!("cannot append to events.ndjson: {e}"));
                st.log = None;
            }
        }
        st.buffer_bytes += json.get().len();
        st.buffer.push_back((seq, json));
        while st.buffer_bytes > self.cap_bytes && st.buffer.len() > 1 {
            if let Some((_, old)) = st.buffer.pop_front() {
                st.buffer_bytes -= old.get().len();
            }
        }
        drop(st);
        // The step that completes a message being written carries its `messageId`: from now
        // on the record holds that text, so a late subscriber needs no copy of it.
        if self.live.any_open() && draft.kind == EventType::Progress {
            if let Some(EventPayload::Value(p)) = &draft.payload {
                if let Some(id) = p.get("messageId").and_then(serde_json::Value::as_str) {
                    self.live.close(id);
                }
            }
        }
        seq
    }

    /// Hands a piece of live text to the live subscribers, after the events recorded so far;
    /// it is never recorded.
    pub fn delta(&self, mut delta: Delta) {
        delta.after_seq = self.last_seq();
        delta.ts = now_ts();
        self.live.push(delta);
    }

    /// A live subscriber's queue of deltas, first holding the text so far of each message
    /// still being written.
    pub fn live(&self) -> crate::live::Subscriber {
        self.live.subscribe(self.last_seq())
    }

    /// Writes buffered log lines to disk and wakes subscribers.
    pub fn flush(&self) {
        let mut st = self.lock();
        if let Some(log) = st.log.as_mut() {
            if let Err(e) = log.flush() {
                st.log_error = Some(format!("cannot write events.ndjson: {e}"));
                st.log = None;
            }
        }
        let last = st.next_seq - 1;
        drop(st);
        self.last_seq.send_replace(last);
    }

    /// Emits and flushes at once.
    pub fn emit_now(&self, draft: &EventDraft) -> u64 {
        let seq = self.emit(draft);
        self.flush();
        seq
    }

    /// Flushes and closes `events.ndjson`; returns the first write error, if any.
    pub fn close(&self) -> Option<String> {
        self.live.end();
        self.flush();
        let mut st = self.lock();
        st.log = None;
        // A finished task keeps only its recent small events in memory; older or larger ones
        // are read back from `events.ndjson`, so a retained task costs kilobytes, not the cap.
        if st.reader.is_some() && st.log_error.is_none() {
            while st.buffer_bytes > RETAINED_BYTES {
                let Some((_, old)) = st.buffer.pop_front() else {
                    break;
                };
                st.buffer_bytes -= old.get().len();
            }
            st.buffer.shrink_to_fit();
        }
        st.log_error.clone()
    }

    /// The first error writing `events.ndjson`, if any.
    pub fn log_error(&self) -> Option<String> {
        self.lock().log_error.clone()
    }

    /// The highest sequence number emitted so far.
    pub fn last_seq(&self) -> u64 {
        self.lock().next_seq - 1
    }

    /// A receiver that changes whenever new events are flushed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.last_seq.subscribe()
    }

    /// Events with `seq > after`, oldest first, about `max` bytes at most (`truncated` says the
    /// cap cut; the caller pages on with a higher `after`).
    pub fn since(&self, after: u64, max: usize) -> Since {
        let st = self.lock();
        let oldest_in_memory = st.buffer.front().map(|(s, _)| *s).unwrap_or(st.next_seq);
        if after.saturating_add(1) >= oldest_in_memory || st.reader.is_none() {
            let mut events: Vec<EventJson> = Vec::new();
            let mut bytes = 0;
            let mut truncated = after.saturating_add(1) < oldest_in_memory;
            // Sequence numbers in the buffer are contiguous, so the start is an index.
            let start = after.saturating_add(1).saturating_sub(oldest_in_memory) as usize;
            for (_, e) in st.buffer.range(start.min(st.buffer.len())..) {
                bytes += e.get().len();
                if bytes > max && !events.is_empty() {
                    truncated = true;
                    break;
                }
                events.push(e.clone());
            }
            return Since {
                events,
                truncated,
                error: None,
            };
        }
        // Start reading at the last indexed event at or before the first one wanted.
        let slot = st
            .index
            .partition_point(|(s, _)| *s <= after.saturating_add(1));
        let offset = slot.checked_sub(1).map_or(0, |i| st.index[i].1);
        let reader = st.reader.clone().expect("a log reader: checked at the top");
        drop(st);
        self.flush();
        match reader.page(offset, after, max) {
            Ok((since, _)) => since,
            Err(e) => Since {
                error: Some(e),
                ..Since::default()
            },
        }
    }
}

#[derive(serde::Deserialize)]
struct SeqOnly {
    seq: u64,
}

/// Below this many bytes a log is scanned rather than searched.
const SCAN_BYTES: u64 = 64 * 1024;

/// A line start in a log whose events are in `seq` order, at or before the first event with
/// `seq > after`: a binary search over byte offsets that reads a few lines, so a page deep in a
/// large log (`afterSeq` near its end) costs no scan of everything before it. A line that does
/// not parse sends the search left (more to scan, never an event missed).
fn seek_after(file: &mut File, after: u64) -> u64 {
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return 0;
    };
    // `lo` is a line start whose event, and so every one before, has `seq <= after`.
    let (mut lo, mut hi) = (0u64, len);
    while hi - lo > SCAN_BYTES {
        let mid = lo + (hi - lo) / 2;
        match line_after(file, mid) {
            Some((start, seq)) if seq <= after && start < hi => lo = start,
            _ => hi = mid,
        }
    }
    lo
}

/// The first line starting after byte `pos` (`pos > 0`): its offset and `seq`.
fn line_after(file: &mut File, pos: u64) -> Option<(u64, u64)> {
    file.seek(SeekFrom::Start(pos - 1)).ok()?;
    let mut reader = BufReader::new(file).take(MAX_LINE_BYTES);
    let mut skipped = Vec::new();
    let n = reader.read_until(b'\n', &mut skipped).ok()?;
    if skipped.last() != Some(&b'\n') {
        return None;
    }
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).ok()?;
    let seq = serde_json::from_slice::<SeqOnly>(line.strip_suffix(b"\n")?)
        .ok()?
        .seq;
    Some((pos - 1 + n as u64, seq))
}

/// Longest line read back from a log: events the worker writes are far smaller; a longer one
/// (a file a child wrote) ends the page instead of being read into memory whole.
const MAX_LINE_BYTES: u64 = 64 << 20;

/// Reads events with `seq > after` from an `events.ndjson` opened as `file`, starting at byte
/// `offset` (the start of a line), up to `max` bytes; also the offset to read the next page from
/// (past the last whole line read; a line still being written is left).
pub fn read_page(mut file: File, offset: u64, after: u64, max: usize) -> (Since, u64) {
    let mut events = Vec::new();
    let mut bytes = 0;
    let mut truncated = false;
    let mut pos = if after > 0 {
        offset.max(seek_after(&mut file, after))
    } else {
        offset
    };
    // Always: the search above moved the file's position, also when it settled on byte 0.
    if file.seek(SeekFrom::Start(pos)).is_err() {
        return (Since::default(), offset);
    }
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    loop {
        line.clear();
        let n = match (&mut reader).take(MAX_LINE_BYTES).read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(n) => n as u64,
        };
        let Some(text) = line.strip_suffix('\n') else {
            break;
        };
        let Ok(SeqOnly { seq }) = serde_json::from_str::<SeqOnly>(text) else {
            pos += n;
            continue;
        };
        if seq <= after {
            pos += n;
            continue;
        }
        bytes += text.len();
        if bytes > max && !events.is_empty() {
            truncated = true;
            break;
        }
        if let Ok(raw) = RawValue::from_string(text.to_string()) {
            events.push(Arc::from(raw));
        }
        pos += n;
    }
    let since = Since {
        events,
        truncated,
        error: None,
    };
    (since, pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskFolder;

    /// A sink logging to a fresh task folder `t1` under `root`; the log's path.
    fn sink_in(root: &std::path::Path, cap: usize) -> (EventSink, std::path::PathBuf) {
        let folder = TaskFolder::at(root, "t1");
        let (file, reader) = folder.create().unwrap();
        let sink = EventSink::new("t1", cap);
        sink.attach(file, reader);
        (sink, folder.file(crate::task::EVENTS_FILE))
    }

    fn seqs(events: &[EventJson]) -> Vec<u64> {
        events
            .iter()
            .map(|e| {
                serde_json::from_str::<serde_json::Value>(e.get()).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn events_are_numbered_and_logged_and_old_ones_come_back_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (sink, path) = sink_in(dir.path(), 400);
        for i in 0..20 {
            sink.emit(&EventDraft::new(EventType::Log, format!("line {i}"), None));
        }
        sink.flush();
        assert_eq!(sink.last_seq(), 20);
        let recent = sink.since(18, usize::MAX);
        assert_eq!(seqs(&recent.events), vec![19, 20]);
        let all = sink.since(0, usize::MAX);
        assert_eq!(seqs(&all.events), (1..=20).collect::<Vec<_>>());
        assert!(!all.truncated);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 20);
        assert!(text.lines().next().unwrap().contains(r#""taskId":"t1""#));
        for i in 20..5000 {
            sink.emit(&EventDraft::new(EventType::Log, format!("line {i}"), None));
        }
        sink.flush();
        assert_eq!(seqs(&sink.since(3000, 100).events), vec![3001]);
        // From the start of the file (a task read back from its folder): searched, not scanned.
        let (deep, _) = read_page(File::open(&path).unwrap(), 0, 4990, usize::MAX);
        assert_eq!(seqs(&deep.events), (4991..=5000).collect::<Vec<_>>());
        // A page near the start of a large log: the search ends at byte 0, where reading starts.
        let (early, _) = read_page(File::open(&path).unwrap(), 0, 64, usize::MAX);
        assert_eq!(seqs(&early.events), (65..=5000).collect::<Vec<_>>());
        let (all, _) = read_page(File::open(&path).unwrap(), 0, 0, usize::MAX);
        assert_eq!(seqs(&all.events), (1..=5000).collect::<Vec<_>>());
        assert_eq!(seqs(&sink.since(1023, 100).events), vec![1024]);
        assert_eq!(seqs(&sink.since(1024, 100).events), vec![1025]);
        let capped = sink.since(0, 100);
        assert!(capped.truncated);
        assert_eq!(seqs(&capped.events)[0], 1);
    }

    #[test]
    fn the_log_is_read_in_pages_from_an_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (sink, path) = sink_in(dir.path(), 1 << 20);
        for i in 0..50 {
            sink.emit(&EventDraft::new(EventType::Log, format!("line {i}"), None));
        }
        sink.close();
        let (mut offset, mut got) = (0, Vec::new());
        loop {
            let (page, next) = read_page(File::open(&path).unwrap(), offset, 10, 300);
            if page.events.is_empty() {
                break;
            }
            got.extend(seqs(&page.events));
            offset = next;
        }
        assert_eq!(got, (11..=50).collect::<Vec<_>>());
        // A line still being written is left for the next read.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(br#"{"type":"task.log","seq":51"#)
            .unwrap();
        let (page, next) = read_page(File::open(&path).unwrap(), offset, 0, usize::MAX);
        assert!(page.events.is_empty());
        assert_eq!(next, offset);
    }
}
