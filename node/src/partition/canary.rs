//! Canary hooks: test-only faults that the fault harness (`jepsen/run --canary`) must report as
//! FAILED, each behind a cargo feature that no release build enables. Without the feature each
//! hook is an inlined no-op, so the hot paths of [`PartitionHandle`] carry one call per hook and
//! no `cfg` blocks.
//!
//! - `canary-ack-before-commit`: a produce is acknowledged when proposed, with the offset it
//!   would get if nothing else were in flight (the current high watermark).
//! - `canary-read-above-hw`: a fetch also serves the batches this leader proposed and has not
//!   seen complete (its uncommitted log tail), and reports the tail's end as the high
//!   watermark.

use super::{Appended, FetchRequest, FetchResponse, PartitionHandle};
use crate::error::ApiError;
use raft_store::RecordBatch;

/// `canary-ack-before-commit`: proposes `batch` without waiting and returns the reply the
/// produce gives instead of committing. `None` (produce normally) without the feature.
#[cfg(feature = "canary-ack-before-commit")]
pub(super) async fn ack_before_commit(
    h: &PartitionHandle,
    batch: &RecordBatch,
) -> Option<Result<Appended, ApiError>> {
    use crate::error::ErrorCode;
    let predicted = h.progress.borrow().high_watermark;
    let proposed = h
        .raft
        .client_write_ff(raft_store::Command::Produce(batch.clone()), None)
        .await;
    Some(match proposed {
        Ok(()) => Ok(Appended {
            base_offset: predicted,
            duplicate: false,
        }),
        Err(f) => Err(ApiError::new(ErrorCode::StorageFailed, f.to_string()).for_write()),
    })
}

/// Without `canary-ack-before-commit`: produce normally.
#[cfg(not(feature = "canary-ack-before-commit"))]
#[inline(always)]
pub(super) async fn ack_before_commit(
    _h: &PartitionHandle,
    _batch: &RecordBatch,
) -> Option<Result<Appended, ApiError>> {
    None
}

/// The uncommitted tail `canary-read-above-hw` serves: a ticket counter and the batches
/// proposed and not yet complete, kept as a Raft extension of the partition.
#[cfg(feature = "canary-read-above-hw")]
type Tail = std::sync::Arc<std::sync::Mutex<(u64, Vec<(u64, RecordBatch)>)>>;

/// Keeps a proposed batch in the leader's uncommitted tail until dropped (when its write
/// completes or fails). Zero-sized without `canary-read-above-hw`.
pub(super) struct ProposedTail {
    #[cfg(feature = "canary-read-above-hw")]
    entry: (Tail, u64),
}

impl ProposedTail {
    /// The write completed (or failed): the batch leaves the tail.
    pub(super) fn completed(self) {}
}

/// Records `batch` in the uncommitted tail (a no-op without `canary-read-above-hw`).
pub(super) fn track_proposed(_h: &PartitionHandle, _batch: &RecordBatch) -> ProposedTail {
    #[cfg(feature = "canary-read-above-hw")]
    {
        let tail = _h.raft.extension::<Tail>();
        let ticket = tail.lock().map_or(0, |mut t| {
            t.0 += 1;
            let ticket = t.0;
            t.1.push((ticket, _batch.clone()));
            ticket
        });
        ProposedTail {
            entry: (tail, ticket),
        }
    }
    #[cfg(not(feature = "canary-read-above-hw"))]
    ProposedTail {}
}

#[cfg(feature = "canary-read-above-hw")]
impl Drop for ProposedTail {
    fn drop(&mut self) {
        let (tail, ticket) = &self.entry;
        if let Ok(mut t) = tail.lock() {
            t.1.retain(|(k, _)| k != ticket);
        }
    }
}

/// `canary-read-above-hw`: appends the uncommitted tail to a fetch reply, at the offsets its
/// records would get. Returns `response` unchanged without the feature.
#[inline]
pub(super) fn serve_above_hw(
    _h: &PartitionHandle,
    _req: &FetchRequest,
    response: FetchResponse,
) -> FetchResponse {
    #[cfg(feature = "canary-read-above-hw")]
    {
        let mut response = response;
        let pending: Vec<RecordBatch> = _h
            .raft
            .extension::<Tail>()
            .lock()
            .map(|t| t.1.iter().map(|(_, b)| b.clone()).collect())
            .unwrap_or_default();
        let mut next = response.high_watermark;
        for record in pending.into_iter().flat_map(|b| b.records) {
            if next >= _req.offset && response.records.len() < _req.max_records {
                response.records.push((next, record));
            }
            next += 1;
        }
        response.high_watermark = next;
        response
    }
    #[cfg(not(feature = "canary-read-above-hw"))]
    response
}
