//! GPU time per kernel from timestamp queries (`hearth bench --profile`).
//!
//! While profiling is on, [`Recorder::submit`](crate::kernels::Recorder::submit) gives every
//! dispatch its own compute pass with a timestamp at its start and end, resolves them into a
//! buffer and leaves that buffer here; [`Gpu::take_profile`](crate::Gpu::take_profile) reads
//! the pending buffers back and sums the time by kernel. Separate passes cost a little
//! overlap, so profiled runs are for seeing where time goes, not for the headline figures.

use std::collections::BTreeMap;

/// Resolved timestamps of one submission: the read-back buffer (two u64 ticks per dispatch)
/// and each dispatch's kernel name.
pub(crate) struct PendingProfile {
    pub buffer: crate::gpu::GpuBuffer,
    pub kernels: Vec<String>,
}

#[derive(Default)]
pub(crate) struct ProfileState {
    pub pending: Vec<PendingProfile>,
    pub totals: BTreeMap<String, KernelTime>,
}

/// Time spent in one kernel (one pipeline: kind and weight format) since profiling began.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelTime {
    pub dispatches: u64,
    pub seconds: f64,
}

impl ProfileState {
    /// Adds one read-back: `ticks` holds begin/end pairs, `period_ns` nanoseconds per tick.
    pub fn add(&mut self, kernels: &[String], ticks: &[u64], period_ns: f32) {
        for (name, pair) in kernels.iter().zip(ticks.chunks_exact(2)) {
            let entry = self.totals.entry(name.clone()).or_default();
            entry.dispatches += 1;
            entry.seconds += pair[1].saturating_sub(pair[0]) as f64 * period_ns as f64 * 1e-9;
        }
    }
}
