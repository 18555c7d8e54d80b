//! The history writer: one JSON line per event, in the order events happen.
//!
//! Time is read under the writer's lock, so the file order is the time order and an operation's
//! invoke line is on disk before its request is sent. Times are nanoseconds since the cell
//! started, from one monotonic clock (the harness's, never a node's faked one).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use crate::history::{Event, EventType, Function, ProcessId};

/// Records events of one cell.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    // std Mutex: held only to format and buffer one line, never across I/O waits on the network.
    out: Mutex<BufWriter<File>>,
}

/// The process id the nemesis records its events under.
pub const NEMESIS_PROCESS: ProcessId = 1_000_000_000;

impl Recorder {
    /// A recorder writing to `path` (truncated).
    ///
    /// # Errors
    /// When the file cannot be created.
    pub fn create(path: &Path, start: Instant) -> std::io::Result<Self> {
        Ok(Recorder {
            start,
            out: Mutex::new(BufWriter::new(File::create(path)?)),
        })
    }

    /// Nanoseconds since the cell started.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Appends one event.
    pub fn record(
        &self,
        process: ProcessId,
        kind: EventType,
        f: Function,
        value: serde_json::Value,
    ) {
        let Ok(mut out) = self.out.lock() else {
            return;
        };
        let event = Event {
            process,
            kind,
            f,
            value,
            time_ns: self.now_ns(),
        };
        if let Ok(line) = serde_json::to_string(&event) {
            let _ = writeln!(out, "{line}");
        }
    }

    /// Records a nemesis event.
    pub fn nemesis(&self, value: serde_json::Value) {
        self.record(NEMESIS_PROCESS, EventType::Info, Function::Nemesis, value);
    }

    /// Flushes buffered lines to the file.
    pub fn flush(&self) {
        if let Ok(mut out) = self.out.lock() {
            let _ = out.flush();
        }
    }
}
