//! The `tierd gen` command line: its arguments, turned into a [`GenConfig`], and where the stream is written.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use anyhow::Context as _;
use chrono::NaiveDate;

use super::config::GenConfig;
use super::stream::Generator;

/// `tierd gen`.
#[derive(Debug, clap::Args)]
pub struct GenArgs {
    /// Lines to write, duplicates included.
    #[arg(long)]
    pub events: u64,
    /// Days the events span, from --start.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Random seed: the same seed and options give byte-identical output.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write to this file instead of stdout (and print a summary on stderr).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// First day of the window (UTC midnight), YYYY-MM-DD.
    #[arg(long, default_value = "2026-01-01", value_parser = parse_start_date)]
    pub start: NaiveDate,
    /// Fraction of lines that are byte-identical re-sends of earlier lines (at-least-once delivery), 0 to 0.5.
    #[arg(long, default_value_t = 0.02)]
    pub dup_rate: f64,
    /// Fraction of events that arrive hours or days after their time, 0 to 1.
    #[arg(long, default_value_t = 0.01)]
    pub late_rate: f64,
    /// Leave out the project `token` property.
    #[arg(long)]
    pub projects_free: bool,
}

fn parse_start_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| format!("expected a date like 2026-01-01: {e}"))
}

impl GenArgs {
    pub fn config(&self) -> GenConfig {
        let start_ms = self.start.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc().timestamp_millis();
        GenConfig {
            events: self.events,
            days: self.days,
            seed: self.seed,
            start_ms,
            dup_rate: self.dup_rate,
            late_rate: self.late_rate,
            project_token: !self.projects_free,
        }
    }
}

/// Runs `tierd gen`: the stream to stdout (nothing else), or to `--out` with a one-line summary on stderr.
pub fn run(args: GenArgs) -> anyhow::Result<()> {
    let mut generator = Generator::new(args.config())?;
    match &args.out {
        Some(path) => {
            let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            let s = generator.write_ndjson(file).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote {} events ({} unique, {} duplicates, {} late), {} bytes to {}",
                s.events,
                s.unique,
                s.duplicates,
                s.late,
                s.bytes,
                path.display()
            );
        }
        None => match generator.write_ndjson(io::stdout().lock()) {
            // `tierd gen | head` is a normal way to look at the stream.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            other => {
                other.context("writing to stdout")?;
            }
        },
    }
    Ok(())
}
