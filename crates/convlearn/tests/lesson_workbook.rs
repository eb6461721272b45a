//! fast.ai's lesson workbook (`../shared/data/lesson/conv-example.xlsx`) imported as a model: every
//! activation the sheet caches (conv1, conv2, the pool) against convlearn's (within 1e-6 of each
//! value's size, max(1, |v|): convlearn computes in f32, the sheet in f64), and its output, EN4.

mod common;

use burn::tensor::Device;
use calamine::{Data, Reader, Xlsx, open_workbook};
use common::require_shared;
use convlearn::host::values;
use convlearn::interpret::{import_lesson_workbook, model_input, read_model_image};

#[test]
#[ignore = "needs ../shared (or $CONVLEARN_DATA): cargo test -- --ignored runs it"]
fn the_lesson_workbook_imports_and_reproduces_every_cached_activation_and_en4() {
    let dir = require_shared();
    let path = dir.join("data/lesson/conv-example.xlsx");
    let lesson = import_lesson_workbook(&path).unwrap();
    assert!(
        (lesson.output - 258.737_626_710_757_24).abs() < 1e-9,
        "{}",
        lesson.output
    );
    // Through the picture file, as `explain` and the page will read it.
    let tmp = tempfile::tempdir().unwrap();
    let picture = tmp.path().join("lesson.input.png");
    lesson.save_input(&picture).unwrap();
    let maps = read_model_image(&lesson.model, &picture).unwrap();
    let device = Device::flex();
    let x = model_input(&lesson.model, &maps, &device);
    let (logits, stages) = lesson.model.network.forward_with_stages(x);
    let logit = values(logits)[0] as f64;
    eprintln!("convlearn {logit} vs EN4 {}", lesson.output);
    assert!(
        (logit - lesson.output).abs() < 1e-4,
        "{logit} vs {}",
        lesson.output
    );

    let mut book: Xlsx<_> = open_workbook(&path).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    let cell = |r: u32, c: u32| match sheet.get_value((r, c)) {
        Some(Data::Float(v)) => *v,
        Some(Data::Int(v)) => *v as f64,
        _ => 0.0,
    };
    // (stage, [(top-left row, column) of each channel's block], side, step between cells)
    type Blocks<'a> = [(&'a str, [(u32, u32); 2], usize, u32); 3];
    let blocks: Blocks = [
        ("conv1 + ReLU", [(2, 33), (31, 33)], 26, 1), // AH3, AH32
        ("conv2 + ReLU", [(3, 64), (32, 64)], 24, 1), // BM4, BM33
        ("pool2", [(3, 90), (32, 90)], 12, 2),        // CM4, CM33, every other cell
    ];
    for (name, corners, side, step) in blocks {
        let (_, t) = stages.iter().find(|(n, _)| n == name).unwrap();
        assert_eq!(t.dims(), [1, 2, side, side], "{name}");
        let ours = values(t.clone());
        let mut worst = 0f64;
        for (c, (r0, c0)) in corners.into_iter().enumerate() {
            for i in 0..side {
                for j in 0..side {
                    let theirs = cell(r0 + i as u32 * step, c0 + j as u32 * step);
                    // f32 arithmetic against the sheet's f64: within 1e-6 of the value's size
                    let d = (ours[(c * side + i) * side + j] as f64 - theirs).abs();
                    worst = worst.max(d / theirs.abs().max(1.0));
                }
            }
        }
        eprintln!(
            "{name}: {} cells, max |Δ| / max(1, |v|) = {worst:.1e}",
            2 * side * side
        );
        assert!(worst <= 1e-6, "{name}: max relative |Δ| = {worst:e}");
    }
}
