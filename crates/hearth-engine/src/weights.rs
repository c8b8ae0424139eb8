//! Weights on the GPU, streamed from a byte source piece by piece.
//!
//! A matrix larger than one storage binding (lavapipe: 128 MiB; a Phi-4-mini embedding at
//! Q4_K is ~345 MB) is split into row chunks, each its own buffer; kernels run once per chunk.
//! Uploads go through pieces of a few MiB so host memory stays bounded by the piece size,
//! never by the tensor.

use crate::error::EngineError;
use crate::gpu::{BufferCheck, Gpu, GpuBuffer, STORAGE_USAGE};
use hearth_gguf::quant::{
    dequantize, gpu_body_words, gpu_layout_is_verbatim, gpu_scale_plane_offset, gpu_words,
    repack_for_gpu_into,
};
use hearth_gguf::{ByteSource, GgmlType, TensorInfo};

/// Host bytes read per upload step.
const PIECE_BYTES: u64 = 8 << 20;

/// Rows `[row_start, row_start + rows)` of a matrix in one buffer.
pub struct MatrixChunk {
    pub buffer: GpuBuffer,
    pub row_start: u32,
    pub rows: u32,
    /// Word offset of the f16 scale plane inside `buffer` (split formats only).
    pub scale_offset: u32,
}

/// A weight matrix `[rows, cols]` (ggml dims `[cols, rows]`) in its GPU layout.
pub struct GpuMatrix {
    pub name: String,
    pub ty: GgmlType,
    pub rows: u32,
    pub cols: u32,
    pub chunks: Vec<MatrixChunk>,
}

/// A projection writing into columns `[out_offset, out_offset + rows)` of a wider output,
/// so fused (`attn_qkv`) and separate (`attn_q`, `attn_k`, `attn_v`) weights fill the same
/// activation buffer.
pub struct Projection {
    pub weight: GpuMatrix,
    pub out_offset: u32,
}

impl GpuMatrix {
    pub fn gpu_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.buffer.size()).sum()
    }

    /// Raw (file) bytes: what one full read of this matrix costs in memory bandwidth.
    pub fn file_bytes(&self) -> u64 {
        self.ty
            .bytes_for(self.rows as u64 * self.cols as u64)
            .unwrap_or(0)
    }

    /// Streams `info` from `source` into GPU buffers of at most `gpu.max_binding_bytes()`.
    pub async fn upload<S: ByteSource>(
        gpu: &Gpu,
        source: &S,
        info: &TensorInfo,
        progress: impl FnMut(u64),
    ) -> Result<Self, EngineError> {
        Self::upload_stacked(gpu, source, &[info], progress).await
    }

    /// One matrix of the rows of `parts` in order (same type and row length), so that one
    /// dispatch computes what would take one per part (separate q, k, v or gate, up).
    pub async fn upload_stacked<S: ByteSource>(
        gpu: &Gpu,
        source: &S,
        parts: &[&TensorInfo],
        progress: impl FnMut(u64),
    ) -> Result<Self, EngineError> {
        let mut uploader = Uploader::new(gpu, source);
        let matrix = uploader.matrix(parts, progress).await?;
        uploader.finish().await?;
        Ok(matrix)
    }
}

/// Streams weights to the GPU without waiting for it. Buffers are made and written while the
/// device is still busy (compiling pipelines, taking earlier writes: in the browser, in
/// another process), and their creation is checked as the device's verdicts come in, all of
/// them by [`Uploader::finish`]. One piece buffer and one repacking buffer serve every tensor.
pub struct Uploader<'a, S> {
    gpu: &'a Gpu,
    source: &'a S,
    checks: Vec<BufferCheck>,
    piece: Vec<u8>,
    packed: Vec<u32>,
}

impl<'a, S: ByteSource> Uploader<'a, S> {
    pub fn new(gpu: &'a Gpu, source: &'a S) -> Self {
        Uploader {
            gpu,
            source,
            checks: Vec::new(),
            piece: Vec::new(),
            packed: Vec::new(),
        }
    }

    /// A buffer for weights; a failure to create it surfaces from a later call or `finish`.
    fn buffer(&mut self, label: &str, bytes: u64) -> Result<GpuBuffer, EngineError> {
        let gpu = self.gpu;
        let mut failure = None;
        self.checks.retain_mut(|check| match check.poll_now(gpu) {
            None => true,
            Some(verdict) => {
                if let Err(e) = verdict {
                    failure.get_or_insert(e);
                }
                false
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        gpu.check()?;
        let (buffer, check) = gpu.buffer_checked_later(label, bytes, STORAGE_USAGE);
        self.checks.push(check);
        Ok(buffer)
    }

    /// Waits until every buffer made so far is known to exist.
    pub async fn finish(self) -> Result<(), EngineError> {
        for check in self.checks {
            check.wait(self.gpu).await?;
        }
        self.gpu.check()
    }

    /// The rows of `parts` stacked into one matrix (see [`GpuMatrix::upload_stacked`]).
    pub async fn matrix(
        &mut self,
        parts: &[&TensorInfo],
        mut progress: impl FnMut(u64),
    ) -> Result<GpuMatrix, EngineError> {
        let gpu = self.gpu;
        let first = parts
            .first()
            .ok_or_else(|| EngineError::Unsupported("a matrix of no tensors".into()))?;
        let (ty, cols) = (first.ty, first.matrix_shape().1);
        if let Some(odd) = parts
            .iter()
            .find(|p| p.ty != ty || p.matrix_shape().1 != cols)
        {
            return Err(EngineError::Unsupported(format!(
                "'{}' cannot be stacked under '{}': type or row length differs",
                odd.name, first.name
            )));
        }
        let rows: u64 = parts.iter().map(|p| p.matrix_shape().0).sum();
        let name = parts
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join("+");
        let (block, block_bytes) = ty.block_layout();
        let blocks_per_row = cols as usize / block;
        let row_raw = (blocks_per_row * block_bytes) as u64;
        let row_words = gpu_words(ty, cols as usize) as u64 + 1; // + 1: a shared scale word
        let limit_words = gpu.max_binding_bytes() / 4;
        // Chunks hold an even number of rows of blocks so that scale pairs never straddle.
        let rows_per_chunk = ((limit_words / row_words) & !1).max(2).min(rows);
        if row_words * 2 > limit_words {
            return Err(EngineError::Unsupported(format!(
                "a row of '{name}' is larger than this GPU's binding limit"
            )));
        }
        let rows_per_piece = ((PIECE_BYTES / row_raw.max(1)) & !1).max(2);

        let mut chunks = Vec::new();
        let mut row_start = 0u64;
        while row_start < rows {
            let chunk_rows = rows_per_chunk.min(rows - row_start);
            let n_blocks = chunk_rows as usize * blocks_per_row;
            let words = gpu_words(ty, n_blocks * block);
            let buffer = self.buffer(&name, words as u64 * 4)?;
            let scale_offset = gpu_scale_plane_offset(ty, n_blocks);

            let mut r = 0u64;
            while r < chunk_rows {
                let piece_rows = rows_per_piece.min(chunk_rows - r);
                self.piece.resize((piece_rows * row_raw) as usize, 0);
                read_rows(self.source, parts, row_raw, row_start + r, &mut self.piece).await?;
                let raw = &self.piece[..];
                let first_block = r as usize * blocks_per_row;
                let piece_blocks = piece_rows as usize * blocks_per_row;
                if gpu_layout_is_verbatim(ty) && raw.len().is_multiple_of(4) {
                    let at = (first_block * block_bytes) as u64;
                    gpu.queue.write_buffer(&buffer, at, raw);
                } else {
                    repack_for_gpu_into(ty, raw, &mut self.packed);
                    let packed = &self.packed[..];
                    if scale_offset == 0 {
                        let at = (first_block * block_bytes) as u64; // unsplit: padded at the end
                        gpu.queue
                            .write_buffer(&buffer, at, bytemuck::cast_slice(packed));
                    } else {
                        let body = piece_blocks * gpu_body_words(ty);
                        gpu.queue.write_buffer(
                            &buffer,
                            (first_block * gpu_body_words(ty) * 4) as u64,
                            bytemuck::cast_slice(&packed[..body]),
                        );
                        gpu.queue.write_buffer(
                            &buffer,
                            ((scale_offset + first_block / 2) * 4) as u64,
                            bytemuck::cast_slice(&packed[body..]),
                        );
                    }
                }
                progress(raw.len() as u64);
                r += piece_rows;
            }
            chunks.push(MatrixChunk {
                buffer,
                row_start: row_start as u32,
                rows: chunk_rows as u32,
                scale_offset: scale_offset as u32,
            });
            row_start += chunk_rows;
        }
        Ok(GpuMatrix {
            name,
            ty,
            rows: rows as u32,
            cols: cols as u32,
            chunks,
        })
    }

    /// Small vector tensors, dequantized to f32, end to end in one vector.
    pub async fn vector(&mut self, parts: &[&TensorInfo]) -> Result<GpuVector, EngineError> {
        let mut values = Vec::new();
        for part in parts {
            values.extend(GpuVector::read(self.source, part).await?);
        }
        let name = parts
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join("+");
        self.vector_from_values(&name, &values)
    }

    pub fn vector_from_values(
        &mut self,
        label: &str,
        values: &[f32],
    ) -> Result<GpuVector, EngineError> {
        let buffer = self.buffer(label, values.len() as u64 * 4)?;
        self.gpu
            .queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(values));
        Ok(GpuVector {
            buffer,
            len: values.len() as u32,
        })
    }
}

/// Fills `out` with rows `first_row..` of the stacked `parts`, `row_bytes` each.
async fn read_rows<S: ByteSource>(
    source: &S,
    parts: &[&TensorInfo],
    row_bytes: u64,
    first_row: u64,
    out: &mut [u8],
) -> Result<(), EngineError> {
    let (mut row, mut filled) = (first_row, 0usize);
    let mut part_start = 0u64;
    for part in parts {
        let part_rows = part.matrix_shape().0;
        while filled < out.len() && row < part_start + part_rows {
            let n = ((part_start + part_rows - row) as usize * row_bytes as usize)
                .min(out.len() - filled);
            source
                .read_at(
                    part.offset + (row - part_start) * row_bytes,
                    &mut out[filled..filled + n],
                )
                .await?;
            filled += n;
            row += n as u64 / row_bytes;
        }
        part_start += part_rows;
    }
    Ok(())
}

/// A small f32 vector (norm weights, RoPE factors), dequantized on the host.
pub struct GpuVector {
    pub buffer: GpuBuffer,
    pub len: u32,
}

impl GpuVector {
    pub async fn from_values(gpu: &Gpu, label: &str, values: &[f32]) -> Result<Self, EngineError> {
        let buffer = gpu
            .storage_buffer(label, values.len() as u64 * 4, wgpu::BufferUsages::empty())
            .await?;
        gpu.queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(values));
        Ok(GpuVector {
            buffer,
            len: values.len() as u32,
        })
    }

    pub async fn read<S: ByteSource>(
        source: &S,
        info: &TensorInfo,
    ) -> Result<Vec<f32>, EngineError> {
        let mut raw = vec![0u8; info.n_bytes as usize];
        source.read_at(info.offset, &mut raw).await?;
        dequantize(info.ty, &raw).ok_or_else(|| {
            EngineError::Unsupported(format!("tensor '{}' has type {}", info.name, info.ty))
        })
    }
}
