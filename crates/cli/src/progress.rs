//! A progress bar fed by the engine's progress events.

use indicatif::{ProgressBar, ProgressStyle};
use tether_engine::{Phase, Progress};

/// Draws sync progress on stderr (nothing when stderr is not a terminal).
pub(crate) struct Bar {
    bar: ProgressBar,
}

impl Bar {
    pub(crate) fn new(label: &str) -> Self {
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template(
            "{prefix:>12} [{bar:40}] {pos:>9}/{len:9} {per_sec:>12} {msg}",
        )
        // The template above is a literal known to parse.
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label.to_owned());
        Bar { bar }
    }

    pub(crate) fn event(&self, p: &Progress) {
        if p.phase == Phase::Ready {
            // A partial replica's priority is complete: said once, above the bar.
            if let Some(priority) = p.priority {
                self.bar.println(format!(
                    "priority {priority} complete: its subscriptions are in"
                ));
            }
            return;
        }
        if let Some(total) = p.total {
            self.bar.set_length(total);
        }
        self.bar.set_position(p.done);
        self.bar.set_message(match p.phase {
            Phase::Push => "pushing local edits",
            Phase::Pull => "downloading",
            Phase::Apply => "applying",
            Phase::Verify => "verifying",
            Phase::Sweep => "sweeping",
            Phase::Ready => "ready",
        });
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
