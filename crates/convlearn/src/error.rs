//! One error type for the library: every variant names the file, tensor or value at fault.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in convlearn, with enough context to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// What the operating system said (in the message, so not also a `source()`: a report that
        /// prints the chain would say it twice).
        error: std::io::Error,
    },
    /// A file was read but its content is not what was expected.
    #[error("{path}: {message}")]
    Format {
        /// The file at fault.
        path: PathBuf,
        /// What was expected and what was found.
        message: String,
    },
    /// A kernel literal or preset name is wrong.
    #[error("{0}")]
    Kernel(String),
    /// Weights do not fit the architecture (names and shapes listed).
    #[error("{0}")]
    Weights(String),
    /// Training had to stop (e.g. the loss became NaN).
    #[error("{0}")]
    Training(String),
    /// Training stopped because a stop was asked for ([`crate::learner::stop_flag`]), after
    /// writing a checkpoint when the run has one.
    #[error("{message}")]
    Interrupted {
        /// Where training stood.
        message: String,
        /// The checkpoint written, from which `--resume` continues.
        checkpoint: Option<PathBuf>,
    },
    /// An argument is out of range or inconsistent.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &Path, error: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            error,
        }
    }

    /// A format error in `path`.
    pub fn format(path: &Path, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, Error>;
