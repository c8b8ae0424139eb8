//! Every kernel's parameter struct in Rust (`kernels/params.rs`) against its WGSL twin as naga
//! reads the shader: the struct bound at binding 0 has the name the kernel declares, and the
//! same size and the same fields at the same offsets as the Rust struct of that name. A field
//! added, removed, renamed or reordered on one side alone fails here.

use hearth_engine::kernels::params::{Field, Layout, layouts};
use hearth_engine::kernels::{HeadShape, Kernel, KernelChoice};
use hearth_engine::{AdapterKind, Gpu, KvFormat};
use hearth_gguf::GgmlType;
use std::collections::{BTreeSet, HashMap};

const ALL_TYPES: [GgmlType; 11] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Bf16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
];

/// The kind of kernel, whatever specialises it; a kernel added without a line here does not
/// compile, and one no adapter compiles fails `every_kernel_is_checked`.
fn variant(kernel: Kernel) -> &'static str {
    match kernel {
        Kernel::Matvec { .. } => "Matvec",
        Kernel::MatvecCpu { .. } => "MatvecCpu",
        Kernel::MatvecGpu { .. } => "MatvecGpu",
        Kernel::Matmul { .. } => "Matmul",
        Kernel::Embed(_) => "Embed",
        Kernel::RmsNorm { .. } => "RmsNorm",
        Kernel::RopeKv => "RopeKv",
        Kernel::QkvBias => "QkvBias",
        Kernel::HeadNorm { .. } => "HeadNorm",
        Kernel::AttentionCpu { .. } => "AttentionCpu",
        Kernel::AttentionGpu(_) => "AttentionGpu",
        Kernel::AttentionCombine => "AttentionCombine",
        Kernel::Gate => "Gate",
        Kernel::Argmax { .. } => "Argmax",
        Kernel::Penalize => "Penalize",
        Kernel::Mask => "Mask",
        Kernel::TopK => "TopK",
    }
}

const VARIANTS: [&str; 17] = [
    "Matvec",
    "MatvecCpu",
    "MatvecGpu",
    "Matmul",
    "Embed",
    "RmsNorm",
    "RopeKv",
    "QkvBias",
    "HeadNorm",
    "AttentionCpu",
    "AttentionGpu",
    "AttentionCombine",
    "Gate",
    "Argmax",
    "Penalize",
    "Mask",
    "TopK",
];

/// Every kernel either kernel set compiles for a model of every weight format, with and
/// without the fusions.
fn every_kernel() -> Vec<Kernel> {
    let mut kernels = Vec::new();
    for adapter in [
        AdapterKind::CpuEmulated,
        AdapterKind::Gpu { matvec_lanes: 16 },
    ] {
        for fusion in [true, false] {
            let mut gpu = pollster::block_on(Gpu::new()).unwrap();
            gpu.set_adapter_kind(adapter).unwrap();
            gpu.set_kernel_fusion(fusion);
            let heads = HeadShape {
                n_head: 24,
                n_head_kv: 8,
                head_dim: 128,
            };
            for kernel in KernelChoice::new(&gpu).kernels_needed(ALL_TYPES, Some(heads)) {
                if !kernels.contains(&kernel) {
                    kernels.push(kernel);
                }
            }
        }
    }
    kernels
}

#[test]
fn every_kernel_is_checked() {
    let compiled: BTreeSet<&str> = every_kernel().into_iter().map(variant).collect();
    assert_eq!(
        compiled,
        BTreeSet::from(VARIANTS),
        "kernels some kernel set compiles"
    );
}

/// The struct at binding 0 of `module`: its name, size and fields, nested structs flattened.
fn wgsl_params(module: &naga::Module) -> Layout {
    let var = module
        .global_variables
        .iter()
        .map(|(_, v)| v)
        .find(|v| {
            v.binding
                .as_ref()
                .is_some_and(|b| b.group == 0 && b.binding == 0)
        })
        .expect("a parameter block at binding 0");
    let ty = &module.types[var.ty];
    let naga::TypeInner::Struct { span, .. } = &ty.inner else {
        panic!("binding 0 is no struct")
    };
    let mut fields = Vec::new();
    flatten(module, var.ty, String::new(), 0, &mut fields);
    let name = ty.name.clone().expect("a named struct");
    Layout {
        name: name.leak(),
        size: *span as usize,
        fields,
    }
}

fn flatten(
    module: &naga::Module,
    ty: naga::Handle<naga::Type>,
    path: String,
    offset: usize,
    out: &mut Vec<Field>,
) {
    match &module.types[ty].inner {
        naga::TypeInner::Struct { members, .. } => {
            for m in members {
                let name = m.name.clone().expect("a named member");
                let path = if path.is_empty() {
                    name
                } else {
                    format!("{path}.{name}")
                };
                flatten(module, m.ty, path, offset + m.offset as usize, out);
            }
        }
        _ => out.push(Field { path, offset }),
    }
}

#[test]
fn every_kernels_parameters_match_their_wgsl() {
    let rust: HashMap<&str, Layout> = layouts().into_iter().map(|l| (l.name, l)).collect();
    let mut checked = BTreeSet::new();
    for kernel in every_kernel() {
        for kv in [KvFormat::F32, KvFormat::F16, KvFormat::PackedF16] {
            let source = kernel.source(kv).unwrap();
            let module = naga::front::wgsl::parse_str(&source)
                .unwrap_or_else(|e| panic!("{kernel}: {}", e.emit_to_string(&source)));
            let wgsl = wgsl_params(&module);
            assert_eq!(
                wgsl.name,
                kernel.params_name(),
                "{kernel}: the struct at binding 0"
            );
            let twin = rust
                .get(wgsl.name)
                .unwrap_or_else(|| panic!("{kernel}: no Rust struct {}", wgsl.name));
            assert_eq!(
                twin.fields, wgsl.fields,
                "{kernel}: {}'s fields in Rust and WGSL",
                wgsl.name
            );
            assert_eq!(
                twin.size, wgsl.size,
                "{kernel}: {}'s size in Rust and WGSL",
                wgsl.name
            );
            checked.insert(wgsl.name);
        }
    }
    // Every parameter block bound by some kernel (Rope only inside others).
    let unbound: Vec<_> = rust
        .keys()
        .filter(|n| !checked.contains(*n) && **n != "Rope")
        .collect();
    assert!(
        unbound.is_empty(),
        "Rust parameter structs no kernel binds: {unbound:?}"
    );
}
