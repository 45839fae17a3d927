//! Progress for long reads of the log: a bar with rate and ETA on a terminal, plain lines
//! (every [`PLAIN_EVERY`]) when stderr is not one (CI logs, pipes).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How often plain progress lines are printed.
pub const PLAIN_EVERY: Duration = Duration::from_secs(2);

pub struct Progress {
    label: String,
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
    quiet: bool,
}

impl Progress {
    /// `unit` names what is counted (e.g. "commits"). `quiet` prints nothing.
    pub fn new(label: &str, unit: &str, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let template =
                format!("{label} [{{bar:40}}] {{pos}}/{{len}} {unit} {{per_sec}} ETA {{eta}}");
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        let now = Instant::now();
        Progress {
            label: label.to_string(),
            bar,
            started: now,
            last_line: now,
            quiet,
        }
    }

    /// `done` of `total` so far (`total` 0: unknown).
    pub fn update(&mut self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total.max(done));
            bar.set_position(done);
            return;
        }
        if self.quiet || self.last_line.elapsed() < PLAIN_EVERY {
            return;
        }
        self.last_line = Instant::now();
        eprintln!("{}", self.line(done, total));
    }

    fn line(&self, done: u64, total: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 && total > done {
            format!("{:.0}s", (total - done) as f64 / rate)
        } else {
            "-".into()
        };
        let pct = if total > 0 {
            done as f64 * 100.0 / total as f64
        } else {
            0.0
        };
        format!(
            "{}: {done}/{total} ({pct:.0}%), {rate:.0}/s, ETA {eta}",
            self.label
        )
    }

    pub fn finish(&mut self, done: u64, total: u64) {
        if let Some(bar) = self.bar.take() {
            bar.set_length(total.max(done));
            bar.set_position(done);
            bar.finish_and_clear();
        }
        if !self.quiet {
            eprintln!(
                "{} in {:.2}s",
                self.line(done, total),
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}
