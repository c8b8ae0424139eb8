//! Hearth's engine: GGUF weights on the GPU and the transformer forward pass, on `wgpu`.
//!
//! The modules in the order a token meets them, each using only those before it:
//! [`error`] what can fail; [`profile`] kernel timings; [`gpu`] the device, its limits and how
//! its work is shaped; [`weights`] tensors streamed into GPU buffers; [`kernels`] the WGSL,
//! which kernel computes what, and recording dispatches; [`model`] a model's weights and
//! kernels; [`sampling`] how the next token is chosen; [`plan`] what a model needs of the
//! GPU; [`forward`] one micro-batch through the layers, top to bottom; [`session`] a
//! conversation's history and KV cache; [`decode`] greedy steps queued ahead; [`generate`]
//! the loop from a prompt to text. Nothing here blocks a thread or touches the file system,
//! so the same code runs natively and in the browser.

pub mod error;
pub mod profile;
pub mod gpu;
pub mod weights;
pub mod kernels;
pub mod model;
pub mod sampling;
pub mod plan;
pub mod forward;
pub mod session;
pub mod decode;
pub mod generate;

pub use decode::{GreedyDecoder, PendingToken, decode_greedy};
pub use error::EngineError;
pub use generate::{FinishReason, Flow, GenerateOptions, Generated, generate};
pub use gpu::{AdapterKind, Gpu, KvFormat, Tuning};
pub use model::Model;
pub use plan::{MemoryPlan, plan};
pub use profile::KernelTime;
pub use sampling::SamplingParams;
pub use session::{Output, Session, Want};
