//! The command line's thread set-up: its main thread is one of rayon's pool
//! (`convlearn::device::compute_on_this_thread`). With `RAYON_NUM_THREADS=1` that thread is the
//! whole pool, and the batches a background thread prepares with rayon can only be prepared by it
//! while it waits for them: a thread that simply slept would wait for ever. (Its own process: the
//! global pool is built once.)

use convlearn::data::{Batcher, Normalization, generate_shapes};
use convlearn::device::inference_device;

#[test]
fn a_one_thread_pool_prepares_the_batches_it_waits_for() {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .use_current_thread()
        .build_global()
        .expect("the first use of rayon in this process");
    let set = generate_shapes(300, 16, 7);
    let batcher = Batcher {
        normalization: Normalization::identity(1),
        batch_size: 32,
        device: inference_device(),
    };
    let order = batcher.epoch_indices(set.len(), Some(3));
    let mut seen = 0;
    batcher
        .for_each(&set, &order, Some(11), |_, batch| -> Result<(), ()> {
            seen += batch.indices.len();
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, 300);
    // Stopping early (as a NaN loss does) returns too, with the background thread finished.
    let stopped = batcher.for_each(
        &set,
        &order,
        None,
        |b, _| if b == 2 { Err(b) } else { Ok(()) },
    );
    assert_eq!(stopped, Err(2));
}
