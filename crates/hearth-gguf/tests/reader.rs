//! The GGUF reader on real files, on every truncation of them, and on hostile headers.

use hearth_gguf::quant::dequantize;
use hearth_gguf::{GgmlType, GgufError, SliceSource, parse_header, read_header};
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(name),
    )
    .expect("fixture")
}

#[test]
fn reads_a_real_file_header_and_tensor_table() {
    let bytes = fixture("tiny-q4_k_m.gguf");
    let g = parse_header(&bytes, bytes.len() as u64).unwrap();
    assert_eq!(g.version, 3);
    assert_eq!(g.architecture(), Some("phi3"));
    assert_eq!(g.get("phi3.block_count").and_then(|v| v.as_u64()), Some(2));
    let qkv = g.tensor("blk.0.attn_qkv.weight").unwrap();
    assert_eq!(qkv.dims, vec![256, 512]);
    assert!(matches!(
        qkv.ty,
        GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K
    ));
    assert_eq!(qkv.offset % g.alignment, 0);
    assert!(
        g.tensors
            .iter()
            .all(|t| t.offset + t.n_bytes <= bytes.len() as u64)
    );
}

#[test]
fn async_reader_grows_its_prefix_until_the_header_fits() {
    let bytes = fixture("tiny-f16-gqa-tied.gguf");
    let whole = parse_header(&bytes, bytes.len() as u64).unwrap();
    let streamed = pollster::block_on(read_header(&SliceSource(&bytes))).unwrap();
    assert_eq!(whole.tensors, streamed.tensors);
    assert_eq!(whole.metadata, streamed.metadata);
    // A prefix shorter than the header asks for more rather than failing.
    assert!(matches!(
        parse_header(&bytes[..100], bytes.len() as u64),
        Err(GgufError::NeedMore { .. })
    ));
}

#[test]
fn every_truncation_is_a_clear_error() {
    let bytes = fixture("tiny-q8_0.gguf");
    let header_end = parse_header(&bytes, bytes.len() as u64)
        .unwrap()
        .data_offset as usize;
    // Every cut inside the header, and a sample of cuts inside the tensor data.
    let cuts = (0..header_end).chain((header_end..bytes.len()).step_by(997));
    for cut in cuts {
        let err = pollster::block_on(read_header(&SliceSource(&bytes[..cut]))).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, GgufError::Truncated { .. } | GgufError::Corrupt(_)),
            "cut at {cut}: {msg}"
        );
    }
}

/// Builds a minimal GGUF header by hand.
fn header(version: u32, n_tensors: u64, n_kv: u64, rest: &[u8]) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(version.to_le_bytes());
    b.extend(n_tensors.to_le_bytes());
    b.extend(n_kv.to_le_bytes());
    b.extend(rest);
    b
}

fn string(s: &str) -> Vec<u8> {
    let mut b = (s.len() as u64).to_le_bytes().to_vec();
    b.extend(s.as_bytes());
    b
}

fn parse(bytes: &[u8]) -> Result<hearth_gguf::Gguf, GgufError> {
    parse_header(bytes, bytes.len() as u64)
}

#[test]
fn hostile_headers_are_refused_without_large_allocations() {
    assert!(matches!(
        parse(b"GGML\x03\0\0\0"),
        Err(GgufError::BadMagic(_))
    ));
    assert!(matches!(
        parse(&header(1, 0, 0, &[])),
        Err(GgufError::UnsupportedVersion(1))
    ));
    assert!(matches!(
        parse(&header(3u32.swap_bytes(), 0, 0, &[])),
        Err(GgufError::BigEndian)
    ));
    // Counts no file could hold.
    assert!(matches!(
        parse(&header(3, u64::MAX, 0, &[])),
        Err(GgufError::Corrupt(_))
    ));
    assert!(matches!(
        parse(&header(3, 0, 1 << 60, &[])),
        Err(GgufError::Corrupt(_))
    ));
    // A string claiming 2^63 bytes.
    let mut kv = (1u64 << 63).to_le_bytes().to_vec();
    kv.extend([0u8; 16]);
    assert!(matches!(
        parse(&header(3, 0, 1, &kv)),
        Err(GgufError::Corrupt(_))
    ));
    // An array claiming 2^40 u32 items.
    let mut kv = string("a");
    kv.extend(9u32.to_le_bytes());
    kv.extend(4u32.to_le_bytes());
    kv.extend((1u64 << 40).to_le_bytes());
    assert!(matches!(
        parse(&header(3, 0, 1, &kv)),
        Err(GgufError::Corrupt(_))
    ));
    // Unknown value type.
    let mut kv = string("a");
    kv.extend(99u32.to_le_bytes());
    kv.extend([0u8; 8]);
    assert!(matches!(
        parse(&header(3, 0, 1, &kv)),
        Err(GgufError::Corrupt(_))
    ));
    // Nested arrays deeper than any model uses.
    let mut kv = string("a");
    for _ in 0..4 {
        kv.extend(9u32.to_le_bytes());
        kv.extend(9u32.to_le_bytes());
        kv.extend(1u64.to_le_bytes());
    }
    kv.extend([0u8; 32]);
    assert!(matches!(
        parse(&header(3, 0, 1, &kv)),
        Err(GgufError::Corrupt(_))
    ));
}

fn tensor_info(name: &str, dims: &[u64], ty: u32, offset: u64) -> Vec<u8> {
    let mut b = string(name);
    b.extend((dims.len() as u32).to_le_bytes());
    for d in dims {
        b.extend(d.to_le_bytes());
    }
    b.extend(ty.to_le_bytes());
    b.extend(offset.to_le_bytes());
    b
}

#[test]
fn tensor_tables_are_checked_against_the_file() {
    let pad = |mut b: Vec<u8>, data: usize| {
        b.resize(b.len().next_multiple_of(32) + data, 0);
        b
    };
    // A valid one-tensor file: 32 f32 values.
    let ok = pad(header(3, 1, 0, &tensor_info("t", &[32], 0, 0)), 128);
    assert_eq!(parse(&ok).unwrap().tensors[0].n_bytes, 128);
    // Data past the end of the file.
    let short = pad(header(3, 1, 0, &tensor_info("t", &[32], 0, 0)), 64);
    assert!(matches!(parse(&short), Err(GgufError::Truncated { .. })));
    // Misaligned offset, unknown type, zero and overflowing dimensions, too many dimensions,
    // a row that is not a whole number of blocks, a duplicate name.
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (tensor_info("t", &[32], 0, 4), "not aligned"),
        (tensor_info("t", &[32], 77, 0), "unknown type"),
        (tensor_info("t", &[0], 0, 0), "dimension 0"),
        (tensor_info("t", &[1 << 62, 1 << 62], 0, 0), "overflows"),
        (tensor_info("t", &[2, 2, 2, 2, 2], 0, 0), "dimensions"),
        (tensor_info("t", &[33], 8, 0), "block size"),
        (
            [
                tensor_info("t", &[32], 0, 0),
                tensor_info("t", &[32], 0, 128),
            ]
            .concat(),
            "twice",
        ),
    ];
    for (info, why) in cases {
        let n = if why == "twice" { 2 } else { 1 };
        let file = pad(header(3, n, 0, &info), 4096);
        let err = parse(&file).unwrap_err().to_string();
        assert!(err.contains(why), "expected '{why}' in: {err}");
    }
    // general.alignment must be a power of two.
    let mut kv = string("general.alignment");
    kv.extend(4u32.to_le_bytes());
    kv.extend(24u32.to_le_bytes());
    assert!(matches!(
        parse(&header(3, 0, 1, &kv)),
        Err(GgufError::BadMetadata { .. })
    ));
}

/// Hearth's CPU dequantizer against gguf-py's, on data quantized by gguf-py (legacy types)
/// and by llama.cpp's own quantizer (K-quants). This is the reference the GPU kernels are
/// tested against.
#[test]
fn cpu_dequantization_matches_gguf_py() {
    for (name, ty) in [
        ("F16", GgmlType::F16),
        ("BF16", GgmlType::Bf16),
        ("Q8_0", GgmlType::Q8_0),
        ("Q4_0", GgmlType::Q4_0),
        ("Q4_1", GgmlType::Q4_1),
        ("Q5_0", GgmlType::Q5_0),
        ("Q5_1", GgmlType::Q5_1),
        ("Q4_K", GgmlType::Q4K),
        ("Q5_K", GgmlType::Q5K),
        ("Q6_K", GgmlType::Q6K),
    ] {
        let raw = fixture(&format!("dequant/{name}.raw"));
        let expected: Vec<f32> = fixture(&format!("dequant/{name}.f32"))
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let got = dequantize(ty, &raw).unwrap();
        assert_eq!(got.len(), expected.len(), "{name}");
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert!(
                (g - e).abs() <= 1e-6 * e.abs().max(1.0),
                "{name}[{i}]: {g} vs {e}"
            );
        }
    }
}
