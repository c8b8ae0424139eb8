//! Any bytes as a GGUF file: the header parser, the model configuration and tensor checks made
//! from it, and the CPU dequantizers and GPU repacking on whatever tensor bytes it points at.
//! Nothing may panic, hang, or allocate by a size the file merely claims.
#![no_main]

use hearth_gguf::quant::{dequantize, repack_for_gpu};
use hearth_gguf::{Gguf, parse_header};
use libfuzzer_sys::fuzz_target;

/// Tensor bytes run through the dequantizers per input, so each input stays fast.
const TENSOR_BYTES_CHECKED: u64 = 1 << 16;

fn check_model(gguf: &Gguf) {
    if let Ok(config) = hearth_model::Config::from_gguf(gguf) {
        let _ = config.expected_tensors();
        let _ = (config.kv_bytes_per_token(2), config.kv_bytes_per_token(4));
        let _ = config.uses_long_rope_factors(config.context_length);
    }
}

fuzz_target!(|data: &[u8]| {
    // The bytes as the start of a larger file: the header alone (what the browser reads before
    // downloading weights), tensors allowed to lie beyond these bytes.
    if let Ok(gguf) = parse_header(data, (data.len() as u64).saturating_mul(4).max(1 << 20)) {
        check_model(&gguf);
    }
    // The bytes as a whole file: every tensor must lie inside it.
    if let Ok(gguf) = parse_header(data, data.len() as u64) {
        for t in &gguf.tensors {
            let end = t
                .offset
                .checked_add(t.n_bytes)
                .expect("tensor end overflows");
            assert!(
                end <= gguf.file_len,
                "tensor '{}' ends past the file",
                t.name
            );
            if t.n_bytes <= TENSOR_BYTES_CHECKED {
                let raw = &data[t.offset as usize..end as usize];
                let _ = dequantize(t.ty, raw);
                let _ = repack_for_gpu(t.ty, raw);
            }
        }
        check_model(&gguf);
    }
});
