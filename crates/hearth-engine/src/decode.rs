//! Greedy decoding with the next step queued before the token it feeds is read back.
//!
//! Each greedy step is a submission, then a 4-byte read-back (a fence and a map; in a
//! browser an IPC hop and a task), then the host recording the next step. Done one after the
//! other, the GPU idles through the last two every token. Here the step that feeds token k is
//! recorded and submitted before token k is read: its embedding kernel takes the token
//! straight from the argmax buffer, and two read-back slots alternate so that one step's
//! token is read while the next step runs. The session's history holds a placeholder for a
//! token the GPU fed until it is read.

use crate::error::EngineError;
use crate::gpu::{Gpu, GpuBuffer};
use crate::session::{Feed, Session};

/// A 4-byte read-back buffer and its map request in flight, if any.
struct TokenSlot {
    buffer: GpuBuffer,
    mapping: Option<futures_channel::oneshot::Receiver<Result<(), wgpu::BufferAsyncError>>>,
}

/// A greedy step on the GPU whose token has not been read back yet
/// ([`GreedyDecoder::read`] waits for it).
#[must_use = "a pending token must be read back with GreedyDecoder::read"]
pub struct PendingToken {
    slot: usize,
    submission: wgpu::SubmissionIndex,
    /// The history position of the token this step produces, where the step fed on the
    /// GPU after it leaves a placeholder.
    position: usize,
}

/// Greedy steps queued ahead on one session: two read-back slots, used in turn.
pub struct GreedyDecoder {
    slots: [TokenSlot; 2],
    next_slot: usize,
}

impl GreedyDecoder {
    pub async fn new(gpu: &Gpu) -> Result<Self, EngineError> {
        let slot = async || -> Result<TokenSlot, EngineError> {
            let buffer = gpu.readback_buffer("token read-back", 4).await?;
            Ok(TokenSlot {
                buffer,
                mapping: None,
            })
        };
        Ok(GreedyDecoder {
            slots: [slot().await?, slot().await?],
            next_slot: 0,
        })
    }

    /// Feeds `tokens` and submits the greedy step without waiting for its token.
    pub async fn submit(
        &mut self,
        session: &mut Session,
        tokens: &[u32],
    ) -> Result<PendingToken, EngineError> {
        self.submit_feed(session, Feed::Host(tokens)).await
    }

    /// Submits the greedy step that feeds `previous`'s token, straight from the GPU, before
    /// that token is read back. `previous` must be the last step submitted. Its token is in
    /// the history as soon as `read(previous)` returns it.
    pub async fn submit_after(
        &mut self,
        session: &mut Session,
        previous: &PendingToken,
    ) -> Result<PendingToken, EngineError> {
        if previous.position != session.history().len() {
            return Err(EngineError::Unsupported(
                "a greedy step can only follow the last step submitted".into(),
            ));
        }
        self.submit_feed(session, Feed::PreviousArgmax).await
    }

    async fn submit_feed(
        &mut self,
        session: &mut Session,
        feed: Feed<'_>,
    ) -> Result<PendingToken, EngineError> {
        let slot = self.next_slot;
        // The slot's last map request, if never awaited (an error cut a read short), must end
        // before the buffer is written again.
        self.settle(session.model().gpu.as_ref(), slot).await;
        let submission = session
            .submit_greedy(feed, &self.slots[slot].buffer)
            .await?;
        // Asked for now, granted when the step is done: reading it waits for nothing else.
        let (tx, rx) = futures_channel::oneshot::channel();
        self.slots[slot]
            .buffer
            .slice(..4)
            .map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
        self.slots[slot].mapping = Some(rx);
        self.next_slot = 1 - slot;
        Ok(PendingToken {
            slot,
            submission,
            position: session.history().len(),
        })
    }

    /// Waits for a pending step's token (only that step: later ones stay queued) and puts it
    /// in the history where a later step fed it.
    pub async fn read(
        &mut self,
        session: &mut Session,
        pending: PendingToken,
    ) -> Result<u32, EngineError> {
        let gpu = session.model().gpu.clone();
        let slot = &mut self.slots[pending.slot];
        let mapping = slot
            .mapping
            .take()
            .ok_or_else(|| EngineError::Readback("this token was read already".into()))?;
        // Native: block until that submission is done. Web: no effect; the browser maps it.
        let wait = wgpu::PollType::Wait {
            submission_index: Some(pending.submission),
            timeout: None,
        };
        let _ = gpu.device.poll(wait);
        let mapped = mapping
            .await
            .map_err(|_| EngineError::Readback("the GPU dropped the request".into()))?;
        gpu.check()?;
        mapped.map_err(|e| EngineError::Readback(e.to_string()))?;
        let token = {
            let bytes = slot
                .buffer
                .slice(..4)
                .get_mapped_range()
                .map_err(|e| EngineError::Readback(e.to_string()))?;
            u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes mapped"))
        };
        slot.buffer.unmap();
        session.record_read_token(pending.position, token);
        Ok(token)
    }

    /// Ends a slot's map request that nobody awaited, so the buffer can be written again.
    async fn settle(&mut self, gpu: &Gpu, slot: usize) {
        if let Some(mapping) = self.slots[slot].mapping.take() {
            let _ = gpu.device.poll(wgpu::PollType::wait_indefinitely());
            if let Ok(Ok(())) = mapping.await {
                self.slots[slot].buffer.unmap();
            }
        }
    }

    /// Feeds `tokens`, then decodes `n` tokens greedily: each step queued before the token it
    /// feeds is read back where the adapter queues ahead (`Tuning::queue_ahead`), one step at
    /// a time elsewhere. Returns the `n` tokens; the last one is not fed.
    pub async fn decode(
        &mut self,
        session: &mut Session,
        tokens: &[u32],
        n: usize,
    ) -> Result<Vec<u32>, EngineError> {
        let mut out = Vec::with_capacity(n);
        if n == 0 {
            return Ok(out);
        }
        if !session.model().kernels.choice().tuning().queue_ahead {
            out.push(session.next_greedy(tokens).await?);
            while out.len() < n {
                let last = out[out.len() - 1];
                out.push(session.next_greedy(&[last]).await?);
            }
            return Ok(out);
        }
        let mut pending = self.submit(session, tokens).await?;
        loop {
            let ahead = match out.len() + 1 < n {
                true => Some(self.submit_after(session, &pending).await?),
                false => None,
            };
            out.push(self.read(session, pending).await?);
            match ahead {
                Some(next) => pending = next,
                None => return Ok(out),
            }
        }
    }
}

/// [`GreedyDecoder::decode`] with a decoder of its own.
pub async fn decode_greedy(
    session: &mut Session,
    tokens: &[u32],
    n: usize,
) -> Result<Vec<u32>, EngineError> {
    let gpu = session.model().gpu.clone();
    GreedyDecoder::new(&gpu)
        .await?
        .decode(session, tokens, n)
        .await
}
