//! From a GGUF header to a model description: hyper-parameters, which tensors hold which
//! weights, and how much GPU memory they need.
//!
//! Architectures are data ([`Architecture`]): tensor names, whether Q/K/V and gate/up are
//! fused, the RoPE pairing. The forward pass in `hearth-engine` reads only this description.

mod config;

pub use config::{
    Activation, Architecture, Config, FfnWeights, LayerAttention, LayerWeights, ModelError, QkNorm,
    QkvBias, QkvWeights, RopeStyle, SlidingWindow, WeightNames,
};
