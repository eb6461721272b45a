//! Progress bars for long work (hidden when stderr is not a terminal or when asked to be quiet).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar on stderr.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar of `len` steps titled `title`; `visible` false hides it entirely.
    pub fn new(len: u64, title: &str, visible: bool) -> Self {
        let bar = ProgressBar::with_draw_target(
            Some(len),
            if visible {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed}<{eta} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(title.to_string());
        Self { bar }
    }

    /// Advances one step and shows `message`.
    pub fn step(&self, message: String) {
        self.bar.set_message(message);
        self.bar.inc(1);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
