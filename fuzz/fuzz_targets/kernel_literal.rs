//! Any text as a kernel literal or preset name (`-1 -1 -1; 0 0 0; 1 1 1`, channels split by `|`),
//! and the kernel applied to a small picture: a kernel or an error, never a crash.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(kernel) = convlearn::kernels::Kernel::from_spec(text) {
        assert_eq!(
            kernel.weights.len(),
            kernel.channels * kernel.height * kernel.width
        );
        if kernel.channels > 16 {
            return;
        }
        let values = (0..kernel.channels * 81)
            .map(|i| (i % 7) as f32 / 7.0)
            .collect();
        let maps = convlearn::kernels::FeatureMaps::new(kernel.channels, 9, 9, values);
        for padding in ["valid", "zero", "replicate"] {
            let padding = convlearn::kernels::Padding::parse(padding).unwrap();
            let _ = convlearn::kernels::KernelFigure::compute(maps.clone(), &kernel, padding, 2);
        }
    }
});
