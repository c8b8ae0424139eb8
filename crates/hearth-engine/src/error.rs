//! Every failure the engine reports, each in the user's terms.

use hearth_gguf::GgufError;
use hearth_model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "no usable GPU adapter was found ({0}); Hearth needs WebGPU in the browser or Vulkan, \
         Metal or DX12 natively"
    )]
    NoAdapter(String),
    #[error("the GPU refused to open a device: {0}")]
    RequestDevice(String),
    #[error("{0}")]
    Gguf(#[from] GgufError),
    #[error("{0}")]
    Model(#[from] ModelError),
    #[error("{0}")]
    Text(#[from] hearth_text::TextError),
    #[error("the GPU is out of memory: {0}")]
    OutOfMemory(String),
    #[error("the GPU device was lost ({0}); create a new engine to continue")]
    DeviceLost(String),
    #[error("GPU error: {0}")]
    Gpu(String),
    #[error("reading a result back from the GPU failed: {0}")]
    Readback(String),
    #[error("the conversation needs {needed} tokens but the context window holds {ctx}")]
    ContextFull { needed: usize, ctx: usize },
    #[error("token id {id} is outside the model's vocabulary of {n_vocab} tokens")]
    BadToken { id: u32, n_vocab: usize },
    #[error("{0}")]
    Unsupported(String),
}

impl EngineError {
    /// A short, stable name for the kind of error (the JS API's `HearthError.code`).
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::NoAdapter(_) | EngineError::RequestDevice(_) => "no-webgpu",
            EngineError::Gguf(e) => e.code(),
            EngineError::Model(e) => e.code(),
            EngineError::Text(e) => e.code(),
            EngineError::OutOfMemory(_) => "out-of-memory",
            EngineError::DeviceLost(_) => "device-lost",
            EngineError::Gpu(_) | EngineError::Readback(_) => "gpu",
            EngineError::ContextFull { .. } => "context-full",
            EngineError::BadToken { .. } => "bad-token",
            EngineError::Unsupported(_) => "unsupported",
        }
    }
}

impl From<hearth_gguf::SourceError> for EngineError {
    fn from(e: hearth_gguf::SourceError) -> Self {
        EngineError::Gguf(e.into())
    }
}
