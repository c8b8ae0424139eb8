// The feed-forward gate's activation, shared by gate.wgsl and the matrix kernels that apply
// the gate as they write (`glu`): SiLU, or with `gelu` = 1 GELU's tanh approximation (Gemma).

fn gate_activation(g: f32, gelu: u32) -> f32 {
    if (gelu == 1u) {
        // tanh's argument is clamped where tanh is ±1 in f32: some backends compute tanh
        // through exp and return NaN for large arguments.
        let inner = clamp(0.7978845608 * (g + 0.044715 * g * g * g), -15.0, 15.0);
        return 0.5 * g * (1.0 + tanh(inner));
    }
    return g / (1.0 + exp(-g));
}
