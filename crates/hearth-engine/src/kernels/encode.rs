//! Turning recorded dispatches into one command submission: every dispatch's parameters in
//! one uniform buffer, bind groups made once and reused, one compute pass (or, profiling, a
//! pass per dispatch between timestamps).

use super::params::{MAX_PARAMS_BYTES, Uniform};
use super::source::Kernel;
use crate::gpu::{Gpu, GpuBuffer};
use crate::profile::PendingProfile;
use std::collections::HashMap;

/// One recorded dispatch.
pub(crate) struct Dispatch<'a> {
    kernel: Kernel,
    pipeline: &'a wgpu::ComputePipeline,
    /// The parameter block's bytes, zero-padded.
    params: [u8; MAX_PARAMS_BYTES as usize],
    /// Bindings 1.. in order.
    buffers: Vec<wgpu::BufferBinding<'a>>,
    groups: [u32; 3],
}

impl<'a> Dispatch<'a> {
    pub fn new<P: Uniform>(
        kernel: Kernel,
        pipeline: &'a wgpu::ComputePipeline,
        params: P,
        buffers: Vec<wgpu::BufferBinding<'a>>,
        groups: [u32; 3],
    ) -> Self {
        let mut bytes = [0u8; MAX_PARAMS_BYTES as usize];
        let block = bytemuck::bytes_of(&params);
        bytes[..block.len()].copy_from_slice(block);
        Dispatch {
            kernel,
            pipeline,
            params: bytes,
            buffers,
            groups,
        }
    }
}

/// What submissions keep between forward passes: the uniform buffer of dispatch parameters
/// and the bind groups made for it. A conversation's passes repeat the same dispatches on the
/// same buffers (every decoded token does), so after the first each bind group is reused
/// instead of made again — on the web each one is a call into the browser's GPU process.
#[derive(Default)]
pub struct SubmitCache {
    params: Option<GpuBuffer>,
    bind_groups: HashMap<BindKey, wgpu::BindGroup>,
}

/// Everything a dispatch's bind group refers to. Holding the buffers keeps them alive, so the
/// owner clears the cache when it replaces buffers (`SubmitCache::clear`).
#[derive(PartialEq, Eq, Hash)]
struct BindKey {
    pipeline: wgpu::ComputePipeline,
    params_offset: u64,
    buffers: Vec<(wgpu::Buffer, u64, Option<wgpu::BufferSize>)>,
}

/// Bind groups kept at most; past this (prefills of many different lengths) the cache restarts.
const MAX_CACHED_BIND_GROUPS: usize = 16384;

impl SubmitCache {
    /// Forgets every bind group (and with them the buffers they hold).
    pub fn clear(&mut self) {
        self.bind_groups.clear();
    }

    pub fn cached_bind_groups(&self) -> usize {
        self.bind_groups.len()
    }
}

/// Encodes `dispatches` into one compute pass, lets `after` append copies (read-backs), and
/// submits once.
pub(crate) fn submit(
    gpu: &Gpu,
    dispatches: &[Dispatch],
    cache: &mut SubmitCache,
    after: impl FnOnce(&mut wgpu::CommandEncoder),
) -> wgpu::SubmissionIndex {
    let stride = (gpu.limits.min_uniform_buffer_offset_alignment as u64).max(MAX_PARAMS_BYTES);
    let needed = stride * dispatches.len().max(1) as u64;
    if cache.params.as_ref().is_none_or(|b| b.size() < needed) {
        cache.bind_groups.clear();
        let usage = wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST;
        cache.params = Some(gpu.buffer_now("dispatch params", needed.next_power_of_two(), usage));
    }
    if cache.bind_groups.len() + dispatches.len() > MAX_CACHED_BIND_GROUPS {
        cache.bind_groups.clear();
    }
    let params: wgpu::Buffer = (**cache.params.as_ref().expect("created above")).clone();
    let mut bytes = vec![0u8; needed as usize];
    for (i, d) in dispatches.iter().enumerate() {
        let at = i * stride as usize;
        bytes[at..at + MAX_PARAMS_BYTES as usize].copy_from_slice(&d.params);
    }
    gpu.queue.write_buffer(&params, 0, &bytes);

    let bind_groups: Vec<wgpu::BindGroup> = dispatches
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let params_offset = i as u64 * stride;
            let key = BindKey {
                pipeline: d.pipeline.clone(),
                params_offset,
                buffers: d
                    .buffers
                    .iter()
                    .map(|b| (b.buffer.clone(), b.offset, b.size))
                    .collect(),
            };
            let make =
                || {
                    let params = wgpu::BufferBinding {
                        buffer: &params,
                        offset: params_offset,
                        size: wgpu::BufferSize::new(MAX_PARAMS_BYTES),
                    };
                    let mut entries = vec![wgpu::BindGroupEntry {
                        binding: 0,
                        resource: wgpu::BindingResource::Buffer(params),
                    }];
                    entries.extend(d.buffers.iter().enumerate().map(|(j, b)| {
                        wgpu::BindGroupEntry {
                            binding: j as u32 + 1,
                            resource: wgpu::BindingResource::Buffer(b.clone()),
                        }
                    }));
                    gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: None,
                        layout: &d.pipeline.get_bind_group_layout(0),
                        entries: &entries,
                    })
                };
            cache.bind_groups.entry(key).or_insert_with(make).clone()
        })
        .collect();

    let mut encoder = gpu
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("forward"),
        });
    if gpu.is_profiling() {
        encode_timed(gpu, dispatches, &mut encoder, &bind_groups);
    } else {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("forward"),
            timestamp_writes: None,
        });
        for (d, bg) in dispatches.iter().zip(&bind_groups) {
            pass.set_pipeline(d.pipeline);
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
        }
    }
    after(&mut encoder);
    gpu.queue.submit([encoder.finish()])
}

/// Profiling: each dispatch in its own pass between two timestamps, resolved into a buffer
/// that `Gpu::take_profile` reads back later.
fn encode_timed(
    gpu: &Gpu,
    dispatches: &[Dispatch],
    encoder: &mut wgpu::CommandEncoder,
    bind_groups: &[wgpu::BindGroup],
) {
    // A query set holds at most 4096 queries: two per dispatch.
    const DISPATCHES_PER_SET: usize = 2048;
    let n = dispatches.len();
    let usage = wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC;
    let resolved = gpu.buffer_now("timestamps", (n.max(1) * 16) as u64, usage);
    let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
    let readback = gpu.buffer_now("timestamps read-back", resolved.size(), usage);
    for (set_index, first) in (0..n).step_by(DISPATCHES_PER_SET).enumerate() {
        let count = DISPATCHES_PER_SET.min(n - first);
        let set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: (2 * count) as u32,
        });
        for i in 0..count {
            let (d, bg) = (&dispatches[first + i], &bind_groups[first + i]);
            let timestamp_writes = wgpu::ComputePassTimestampWrites {
                query_set: &set,
                beginning_of_pass_write_index: Some(2 * i as u32),
                end_of_pass_write_index: Some(2 * i as u32 + 1),
            };
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("profiled"),
                timestamp_writes: Some(timestamp_writes),
            });
            pass.set_pipeline(d.pipeline);
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
        }
        let offset = (set_index * DISPATCHES_PER_SET * 16) as u64;
        encoder.resolve_query_set(&set, 0..(2 * count) as u32, &resolved, offset);
    }
    encoder.copy_buffer_to_buffer(&resolved, 0, &readback, 0, resolved.size());
    let kernels = dispatches.iter().map(|d| d.kernel.to_string()).collect();
    gpu.add_pending_profile(PendingProfile {
        buffer: readback,
        kernels,
    });
}
