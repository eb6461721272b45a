//! Ctrl-C during training: the first SIGINT or SIGTERM asks the library to stop after the current
//! step (it writes the checkpoint); a second one ends the process at once.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;

/// The exit status of a run stopped by Ctrl-C (128 + SIGINT, as a shell reports it).
const INTERRUPTED: i32 = 130;

/// Routes SIGINT and SIGTERM to [`convlearn::learner::stop_flag`], and says on stderr when a stop
/// was asked for.
pub fn stop_on_signals() -> Result<()> {
    let flag = convlearn::learner::stop_flag();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Armed by the first signal (the registration below), this one ends the process on the second.
        signal_hook::flag::register_conditional_shutdown(signal, INTERRUPTED, flag.clone())?;
        signal_hook::flag::register(signal, flag.clone())?;
    }
    std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "\nstopping after the current step to write the checkpoint (Ctrl-C again quits at once)"
        );
    });
    Ok(())
}

/// A run stopped on request: the message, how to continue, and exit status 130.
pub fn explain(result: Result<()>) -> Result<()> {
    let Err(error) = result else {
        return Ok(());
    };
    let Some(convlearn::Error::Interrupted {
        message,
        checkpoint,
    }) = error.downcast_ref::<convlearn::Error>()
    else {
        return Err(error);
    };
    eprintln!("{message}");
    if checkpoint.is_some() {
        eprintln!("continue with:\n  {}", resume_command());
    }
    std::process::exit(INTERRUPTED);
}

/// This process's command line with `--resume` added, quoted for a POSIX shell.
fn resume_command() -> String {
    let mut words: Vec<String> = std::env::args_os()
        .map(|a| quote(&a.to_string_lossy()))
        .collect();
    if !words.iter().any(|w| w == "--resume") {
        words.push("--resume".to_string());
    }
    words.join(" ")
}

fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quotes_what_a_shell_would_split() {
        assert_eq!(quote("--lr"), "--lr");
        assert_eq!(quote("my photos"), "'my photos'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
