//! Each kernel's uniform parameters as a `#[repr(C)]` struct: the twin of the WGSL struct its
//! shader binds at 0, with the same name and the same fields in the same order (padding
//! fields, named `_pad`, aside). A test parses every kernel's WGSL with naga and checks each
//! struct's size and field offsets against these, so a field added on one side alone fails.

use bytemuck::{Pod, Zeroable};

/// A kernel's parameter block.
pub trait Uniform: Pod {
    /// The WGSL struct's name.
    const WGSL_NAME: &'static str;
}

/// A field of a parameter block, nested structs flattened (`rotation.n_rot`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub path: String,
    pub offset: usize,
}

/// A type that can sit in a parameter block.
trait Member {
    fn flatten(path: String, offset: usize, out: &mut Vec<Field>);
}

impl Member for u32 {
    fn flatten(path: String, offset: usize, out: &mut Vec<Field>) {
        out.push(Field { path, offset });
    }
}

impl Member for f32 {
    fn flatten(path: String, offset: usize, out: &mut Vec<Field>) {
        out.push(Field { path, offset });
    }
}

/// Explicit padding, which the WGSL side leaves implicit.
impl<const N: usize> Member for [u32; N] {
    fn flatten(_: String, _: usize, _: &mut Vec<Field>) {}
}

/// A parameter block's name, size and flattened fields (for the layout test).
#[derive(Clone, Debug)]
pub struct Layout {
    pub name: &'static str,
    pub size: usize,
    pub fields: Vec<Field>,
}

macro_rules! uniforms {
    ($(
        $(#[$doc:meta])*
        struct $name:ident { $( $(#[$field_doc:meta])* $field:ident: $ty:ty, )* }
    )*) => {
        $(
            $(#[$doc])*
            #[repr(C)]
            #[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
            pub struct $name { $( $(#[$field_doc])* pub $field: $ty, )* }

            impl Uniform for $name {
                const WGSL_NAME: &'static str = stringify!($name);
            }

            impl Member for $name {
                fn flatten(path: String, offset: usize, out: &mut Vec<Field>) {
                    $(
                        let name = stringify!($field);
                        let field = match path.is_empty() {
                            true => name.to_owned(),
                            false => format!("{path}.{name}"),
                        };
                        let at = offset + std::mem::offset_of!($name, $field);
                        <$ty as Member>::flatten(field, at, out);
                    )*
                }
            }

            const _: () = assert!(std::mem::size_of::<$name>() <= MAX_PARAMS_BYTES as usize);
        )*

        /// Every parameter block, for the layout test.
        pub fn layouts() -> Vec<Layout> {
            vec![$({
                let mut fields = Vec::new();
                <$name as Member>::flatten(String::new(), 0, &mut fields);
                Layout { name: stringify!($name), size: std::mem::size_of::<$name>(), fields }
            }),*]
        }
    };
}

/// The largest parameter block: the uniform slot each dispatch gets.
pub const MAX_PARAMS_BYTES: u64 = 128;

/// WGSL booleans in uniform blocks are u32.
pub fn flag(on: bool) -> u32 {
    on as u32
}

uniforms! {
    /// matvec.wgsl and matmul.wgsl (shaders/matrix_params.wgsl): `y[t * out_stride +
    /// out_offset + r] (+)= W[r, :] · x[x_row + t, :]`, for `n_rows` rows of `k` values and
    /// `n_tokens` tokens; `scale_offset`: the word where the weights' scale plane starts;
    /// `eps`: the fused RMSNorm's (matmul.wgsl with NORMED).
    struct MatrixParams {
        k: u32,
        scale_offset: u32,
        n_rows: u32,
        n_tokens: u32,
        out_stride: u32,
        out_offset: u32,
        accumulate: u32,
        x_row: u32,
        eps: f32,
    }

    /// matvec_cpu.wgsl: one window of tokens and one slice `[k_begin, k_begin + k_len)` of
    /// the row; `glu`: the gate's rows, when the product is gated.
    struct CpuMatrixParams {
        k: u32,
        scale_offset: u32,
        n_rows: u32,
        n_tokens: u32,
        out_stride: u32,
        out_offset: u32,
        accumulate: u32,
        k_begin: u32,
        k_len: u32,
        glu: u32,
        /// The gate's activation is GELU (1), not SiLU.
        gelu: u32,
    }

    /// matvec_gpu.wgsl: one token at row `x_row` of x.
    struct GpuMatrixParams {
        k: u32,
        scale_offset: u32,
        n_rows: u32,
        out_offset: u32,
        accumulate: u32,
        x_row: u32,
        glu: u32,
        eps: f32,
        gelu: u32,
    }

    /// embed.wgsl: `n_tokens` rows of `k` values, from the chunk holding rows `row_start..`.
    struct EmbedParams {
        k: u32,
        scale_offset: u32,
        n_rows: u32,
        n_tokens: u32,
        row_start: u32,
        /// Multiplier on every value (Gemma's √n_embd).
        scale: f32,
    }

    /// rmsnorm.wgsl: rows of `n` values from row `x_row` on; `accumulate`: added to the
    /// output (a norm before the residual add).
    struct NormParams {
        n: u32,
        x_row: u32,
        eps: f32,
        accumulate: u32,
    }

    /// The rotary embedding (shaders/rope_params.wgsl): the first `n_rot` dimensions of a
    /// head, paired NeoX-style or in neighbours; `log2_base` of the frequencies' base.
    struct Rope {
        n_rot: u32,
        neox: u32,
        log2_base: f32,
        freq_scale: f32,
        attn_factor: f32,
    }

    /// rope_kv.wgsl: `n_tokens` (the dispatch's x) fresh tokens at positions `pos0..`.
    struct RopeParams {
        rotation: Rope,
        _pad: [u32; 3],
        pos0: u32,
        n_head: u32,
        n_head_kv: u32,
        head_dim: u32,
        qkv_stride: u32,
        /// Rows the caches hold: position p is row p % kv_rows.
        kv_rows: u32,
    }

    /// attention_cpu.wgsl and attention_gpu.wgsl (shaders/attention_common.wgsl):
    /// `n_tokens` queries at positions `pos0..`, scores scaled by `scale`; keys in splits of
    /// `split_len` (0: one split) when decoding; `rotate`: attention_gpu.wgsl rotates and
    /// stores a decoded token itself.
    struct AttnParams {
        rotation: Rope,
        _pad: [u32; 3],
        pos0: u32,
        n_head: u32,
        n_head_kv: u32,
        head_dim: u32,
        qkv_stride: u32,
        scale: f32,
        split_len: u32,
        n_splits: u32,
        n_tokens: u32,
        rotate: u32,
        /// Positions a query sees, itself included (sliding-window layers); 0: all.
        window: u32,
        /// Rows the caches hold: position p is row p % kv_rows.
        kv_rows: u32,
    }

    /// attention_combine.wgsl.
    struct CombineParams {
        head_dim: u32,
        n_splits: u32,
    }

    /// qkv_bias.wgsl: `n` biases onto rows `stride` apart.
    struct BiasParams {
        n: u32,
        stride: u32,
    }

    /// head_norm.wgsl: heads of `head_dim` in rows `stride` apart, the first `n_head` queries.
    struct HeadNormParams {
        head_dim: u32,
        stride: u32,
        n_head: u32,
        eps: f32,
    }

    /// gate.wgsl.
    struct GateParams {
        n_ff: u32,
        n_tokens: u32,
        gelu: u32,
    }

    /// argmax.wgsl: over `n` values.
    struct ArgmaxParams {
        n: u32,
    }

    /// penalize.wgsl: `n_entries` records, and the penalties.
    struct PenaltyParams {
        n_entries: u32,
        repeat: f32,
        frequency: f32,
        presence: f32,
    }

    /// mask.wgsl: over `n` logits.
    struct MaskParams {
        n: u32,
    }

    /// top_k.wgsl: one round over `n` values.
    struct TopKParams {
        n: u32,
        first_round: u32,
    }
}
